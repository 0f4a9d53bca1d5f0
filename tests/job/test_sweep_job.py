"""A ``--sweep`` run of the main job, through ``examples/sweep_and_regularizers.py`` at tiny size.

The example trains a 4-seed sweep and one run per regulariser on the session's stand-in
Carbon and snapshot, with a one-block predictor and 4 steps per run. Its sweep run is
then checked: per-variant events and summaries, export of one variant, and exact resume
of the whole stack (the same sweep stopped after step 2 and resumed, whose programs the
session's compilation cache already holds).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from job_support import REPO

from geno_lewm_jax import export
from geno_lewm_jax.checkpointing import CheckpointStore
from geno_lewm_jax.flags import config_from_argv
from geno_lewm_jax.sweep.results import SWEEP_RESULTS_NAME
from geno_lewm_jax.training.carbon import run_carbon_training

VARIANTS = 4
TINY_RUN = (
    "--n_layers=1", "--n_self_layers=0", "--d_hidden=16", "--ffn_dim=16", "--n_heads=2", "--k_buckets=16",
    "--batch_size=8", "--max_steps=4", "--warmup_steps=1", "--log_every_steps=2", "--checkpoint_every_steps=2",
    "--collapse_log_every_steps=2", "--validation_batches=1", "--nobootstrap_missing", "--compilation_cache_dir=",
    "--notensorboard",
)


def _load_example():
    spec = importlib.util.spec_from_file_location("sweep_example", REPO / "examples" / "sweep_and_regularizers.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def _events(run_dir, kind):
    return [e for e in map(json.loads, (run_dir / "train.log").read_text().splitlines()) if e["event"] == kind]


def _final_state(run_dir):
    store = CheckpointStore(run_dir / "checkpoints", async_save=False)
    try:
        step = store.latest_step()
        meta = store.read_meta(step)
        restored = store._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))  # as saved
    finally:
        store.close()
    return step, meta, restored["state"]


@pytest.fixture(scope="module")
def example_run(job_inputs, tmp_path_factory):
    """The example's output and its sweep's run dir, plus the same sweep stopped at step 2 and resumed."""
    root = tmp_path_factory.mktemp("sweep")
    inputs = (f"--model_dir={job_inputs['model_dir']}", f"--dataset_dir={job_inputs['dataset_dir']}")
    example = _load_example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert example.main(["--run_root", str(root), *inputs, *TINY_RUN]) == 0
    resumed = root / "resumed"
    flags = ["prog", f"--flagfile={REPO / 'configs' / 'tiny.flags'}", *inputs, *TINY_RUN, f"--sweep={example.SWEEP}",
             f"--run_dir={resumed}"]
    run_carbon_training(config_from_argv(flags), stop_after_step=2)
    report = run_carbon_training(config_from_argv(flags))
    return example, out.getvalue(), root / "seed_sweep", report


def test_the_example_prints_a_row_per_seed_and_per_regularizer(example_run):
    example, out, _, _ = example_run
    table = out[out.index("seed sweep"):].splitlines()
    assert "variant" in table[1] and "seed" in table[1] and "val_pred_loss" in table[1]
    assert [line.split()[:2] for line in table[2:6]] == [[f"v{i}", str(i)] for i in range(VARIANTS)]
    rows = [r.split() for r in out[out.index("regularizer comparison"):].splitlines()[2:5]]
    assert [r[0] for r in rows] == list(example.REGULARIZERS)
    assert len({r[1] for r in rows}) == 3  # train_loss: each regulariser is in the loss (phase2), so no two agree
    assert len({r[4] for r in rows}) == 3  # val_pred_loss: and each trains the predictor differently


def test_progress_and_validation_events_carry_every_variant(example_run):
    _, _, run_dir, _ = example_run
    progress = _events(run_dir, "train.progress")
    assert [e["step"] for e in progress] == [1, 2, 4]
    last = progress[-1]
    assert last["loss"] == pytest.approx(np.mean([last[f"loss/v{i}"] for i in range(VARIANTS)]))
    assert {last[f"lr/v{i}"] for i in range(VARIANTS)} == {last["lr"]}
    assert len({last[f"pred_loss/v{i}"] for i in range(VARIANTS)}) == VARIANTS  # the loss itself is mostly the KL
    validation = _events(run_dir, "train.validation")
    assert [e["step"] for e in validation] == [0, 2, 4]
    assert all(np.isfinite(e[f"val_loss/v{i}"]) for e in validation for i in range(VARIANTS))
    assert all(f"val_delta_r2/v{i}" in e for e in validation for i in range(VARIANTS))
    collapse = [e for e in _events(run_dir, "training.collapse.metrics") if e["step"] == 4]
    assert sorted(k for e in collapse for k in e if k.startswith("pred_var_per_dim")) == [
        f"pred_var_per_dim/v{i}" for i in range(VARIANTS)
    ]


def test_metrics_and_the_results_table_put_the_variants_side_by_side(example_run):
    _, _, run_dir, _ = example_run
    sweep = json.loads((run_dir / "metrics.json").read_text())["sweep"]
    assert sweep["fields"] == ["seed"] and [v["seed"] for v in sweep["variants"]] == list(range(VARIANTS))
    progress = _events(run_dir, "train.progress")[-1]
    for i, row in enumerate(sweep["variants"]):
        assert row["variant"] == f"v{i}" and row["train_loss"] == progress[f"loss/v{i}"]
        assert row["best_val_loss"] <= row["val_loss"] and np.isfinite(row["pred_var_per_dim"])
    with open(run_dir / SWEEP_RESULTS_NAME, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["variant"] for r in table] == [f"v{i}" for i in range(VARIANTS)]
    wanted = {"seed", "train_loss", "val_loss", "best_val_loss", "val_delta_r2", "pairwise_pred_dist_mean", "collapse_alert_count"}
    assert wanted <= set(table[0])
    assert float(table[3]["train_loss"]) == pytest.approx(sweep["variants"][3]["train_loss"])
    assert (run_dir / "training_curves.png").stat().st_size > 0


def test_a_stopped_and_resumed_sweep_matches_the_straight_one_bit_for_bit(example_run):
    _, _, run_dir, resumed = example_run
    assert resumed.resumed_from_step == 2 and resumed.steps_completed == 4
    step, meta, state = _final_state(run_dir)
    again_step, again_meta, again_state = _final_state(resumed.run_dir)
    assert step == again_step == 4
    assert meta["sweep"]["variants"][3] == {"variant": "v3", "seed": 3}
    assert again_meta["collapse_baseline"] == meta["collapse_baseline"] and len(meta["collapse_baseline"]) == VARIANTS
    leaves, again_leaves = jax.tree.leaves(state), jax.tree.leaves(again_state)
    assert leaves[0].shape[0] == VARIANTS and len(leaves) == len(again_leaves)
    for a, b in zip(leaves, again_leaves):
        np.testing.assert_array_equal(a, b)
    losses = [[e[f"loss/v{i}"] for e in _events(d, "train.progress") if e["step"] == 4 for i in range(VARIANTS)]
              for d in (run_dir, resumed.run_dir)]
    assert losses[0] == losses[1]


def test_export_writes_one_variant_and_refuses_a_sweep_without_one(example_run, tmp_path, capsys):
    _, _, run_dir, _ = example_run
    assert export.main(["export", f"--run_dir={run_dir}", f"--out={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "--variant" in err and "3: seed=3" in err
    assert not (tmp_path / "none").exists()
    out = tmp_path / "v2"
    assert export.main(["export", f"--run_dir={run_dir}", f"--out={out}", "--variant=2", "--allow_reference_mismatch"]) == 0
    from safetensors.numpy import load_file

    from geno_lewm_jax.interop import to_reference_state_dict

    exported = load_file(str(out / export.PREDICTOR_FILE))
    _, predictor, _ = export.load_run_modules(run_dir, variant=2)
    for name, value in to_reference_state_dict(predictor).items():
        np.testing.assert_array_equal(exported[name], value)
    _, _, state = _final_state(run_dir)
    stacked = jax.tree.leaves(state["params"]["predictor"])
    mine = jax.tree.leaves(nnx.to_pure_dict(nnx.state(predictor, nnx.Param)))
    assert len(mine) == len(stacked) > 10
    for leaf, want in zip(mine, stacked):
        np.testing.assert_array_equal(leaf, want[2])
    assert any(not np.array_equal(want[2], want[1]) for want in stacked)
