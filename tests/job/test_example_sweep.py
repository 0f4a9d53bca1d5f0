"""``examples/sweep_and_regularizers.py`` at tiny size: a 4-seed sweep and the regulariser comparison.

In-process, on the session's stand-in Carbon and snapshot, with a one-block predictor and
two steps per run. Without a ``--regularizer`` flag the example says it skips that part.
"""

from __future__ import annotations

import importlib.util

from job_support import REPO

TINY_RUN = (
    "--n_layers=1", "--n_self_layers=0", "--d_hidden=16", "--ffn_dim=16", "--n_heads=2", "--k_buckets=16",
    "--batch_size=8", "--max_steps=2", "--warmup_steps=1", "--log_every_steps=1", "--checkpoint_every_steps=2",
    "--collapse_log_every_steps=2", "--validation_batches=1", "--nobootstrap_missing", "--compilation_cache_dir=",
)


def test_the_example_prints_a_row_per_seed_and_per_regularizer(job_inputs, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sweep_example", REPO / "examples" / "sweep_and_regularizers.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    inputs = (f"--model_dir={job_inputs['model_dir']}", f"--dataset_dir={job_inputs['dataset_dir']}")
    assert example.main(["--run_root", str(tmp_path), *inputs, *TINY_RUN]) == 0
    out = capsys.readouterr().out
    table = out[out.index("seed sweep"):].splitlines()
    assert "variant" in table[1] and "seed" in table[1] and "val_loss" in table[1]
    assert [line.split()[:2] for line in table[2:6]] == [[f"v{i}", str(i)] for i in range(4)]
    assert (tmp_path / "seed_sweep" / "sweep_results.csv").is_file()
    if example.has_flag("regularizer"):
        rows = out[out.index("regularizer comparison"):].splitlines()[2:5]
        assert [r.split()[0] for r in rows] == list(example.REGULARIZERS)
    else:
        assert "regularizer comparison skipped" in out
