"""A ``--sweep`` run of the main job: per-variant events and summaries, exact resume of the stack, export.

In-process on one device with the synthetic state encoder of ``test_loop`` and the tiny
predictor of ``job_support``: one sweep of 4 variants (two seeds x two learning rates),
run once straight through 4 steps and once stopped after step 2 and resumed. The
programs compile once (the second and third runs read them from the session's cache).
"""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest
from flax import nnx

from job_support import job_args
from test_loop import HashEncoder

from geno_lewm_jax import export
from geno_lewm_jax.checkpointing import CheckpointStore
from geno_lewm_jax.flags import config_from_argv
from geno_lewm_jax.sweep.results import SWEEP_RESULTS_NAME
from geno_lewm_jax.training.carbon import run_carbon_training

SWEEP = "--sweep=seed:5,6;lr:1e-3,3e-4"
# Fewer blocks and one K bucket than job_support's SMALL: the sweep's programs compile in this module only.
TINIER = ("--n_layers=1", "--n_self_layers=0", "--d_hidden=16", "--ffn_dim=16", "--k_buckets=16")
VARIANTS = 4


def _run(job_inputs, run_dir, **kwargs):
    args = job_args(job_inputs, run_dir, SWEEP, *TINIER, "--max_steps=4", "--log_every_steps=2",
                    "--checkpoint_every_steps=2", "--collapse_log_every_steps=2")
    config = config_from_argv(["prog", *args])
    return run_carbon_training(config, encoder=HashEncoder(), devices=jax.devices()[:1], **kwargs)


def _events(run_dir, kind):
    return [e for e in map(json.loads, (run_dir / "train.log").read_text().splitlines()) if e["event"] == kind]


def _final_state(run_dir):
    store = CheckpointStore(run_dir / "checkpoints", async_save=False)
    try:
        step = store.latest_step()
        meta = store.read_meta(step)
        import orbax.checkpoint as ocp

        restored = store._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))  # as saved
    finally:
        store.close()
    return step, meta, restored["state"]


@pytest.fixture(scope="module")
def sweep_runs(job_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    straight = _run(job_inputs, root / "straight")
    _run(job_inputs, root / "resumed", stop_after_step=2)
    resumed = _run(job_inputs, root / "resumed")
    return straight, resumed


def test_progress_and_validation_events_carry_every_variant(sweep_runs):
    straight, _ = sweep_runs
    progress = _events(straight.run_dir, "train.progress")
    assert [e["step"] for e in progress] == [1, 2, 4]
    last = progress[-1]
    losses = [last[f"loss/v{i}"] for i in range(VARIANTS)]
    assert last["loss"] == pytest.approx(np.mean(losses))
    # variants 0, 1 (seed 5) and 2, 3 (seed 6) alternate the two learning rates
    assert [last[f"lr/v{i}"] / last["lr_multiplier"] for i in range(VARIANTS)] == pytest.approx([1e-3, 3e-4] * 2)
    assert len({last[f"pred_loss/v{i}"] for i in range(VARIANTS)}) == VARIANTS  # the loss itself is mostly the KL
    validation = _events(straight.run_dir, "train.validation")
    assert [e["step"] for e in validation] == [0, 2, 4]
    assert all(np.isfinite(e[f"val_loss/v{i}"]) for e in validation for i in range(VARIANTS))
    collapse = [e for e in _events(straight.run_dir, "training.collapse.metrics") if e["step"] == 4]
    assert sorted(k for e in collapse for k in e if k.startswith("pred_var_per_dim")) == [
        f"pred_var_per_dim/v{i}" for i in range(VARIANTS)
    ]


def test_metrics_and_the_results_table_put_the_variants_side_by_side(sweep_runs):
    straight, _ = sweep_runs
    metrics = json.loads(straight.metrics_path.read_text())
    sweep = metrics["sweep"]
    assert sweep["fields"] == ["seed", "optimizer.lr"]
    assert [(v["seed"], v["optimizer.lr"]) for v in sweep["variants"]] == [(5, 1e-3), (5, 3e-4), (6, 1e-3), (6, 3e-4)]
    progress = _events(straight.run_dir, "train.progress")[-1]
    for i, row in enumerate(sweep["variants"]):
        assert row["variant"] == f"v{i}" and row["train_loss"] == progress[f"loss/v{i}"]
        assert row["best_val_loss"] <= row["val_loss"] and np.isfinite(row["pred_var_per_dim"])
    with open(straight.run_dir / SWEEP_RESULTS_NAME, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["variant"] for r in table] == [f"v{i}" for i in range(VARIANTS)]
    assert {"seed", "optimizer.lr", "train_loss", "val_loss", "best_val_loss", "pairwise_pred_dist_mean"} <= set(table[0])
    assert float(table[3]["train_loss"]) == pytest.approx(sweep["variants"][3]["train_loss"])
    assert (straight.run_dir / "training_curves.png").stat().st_size > 0


def test_a_stopped_and_resumed_sweep_matches_the_straight_one_bit_for_bit(sweep_runs):
    straight, resumed = sweep_runs
    assert resumed.resumed_from_step == 2 and resumed.steps_completed == 4
    step, meta, state = _final_state(straight.run_dir)
    again_step, again_meta, again_state = _final_state(resumed.run_dir)
    leaves, again_leaves = jax.tree.leaves(state), jax.tree.leaves(again_state)
    assert step == again_step == 4
    assert meta["sweep"]["variants"][3] == {"variant": "v3", "seed": 6, "optimizer.lr": 3e-4}
    assert again_meta["collapse_baseline"] == meta["collapse_baseline"] and len(meta["collapse_baseline"]) == VARIANTS
    assert leaves[0].shape[0] == VARIANTS and len(leaves) == len(again_leaves)
    for a, b in zip(leaves, again_leaves):
        np.testing.assert_array_equal(a, b)
    losses = [[e[f"loss/v{i}"] for e in _events(d, "train.progress") if e["step"] == 4 for i in range(VARIANTS)]
              for d in (straight.run_dir, resumed.run_dir)]
    assert losses[0] == losses[1]


def test_export_writes_one_variant_and_refuses_a_sweep_without_one(sweep_runs, tmp_path, capsys):
    straight, _ = sweep_runs
    assert export.main(["export", f"--run_dir={straight.run_dir}", f"--out={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "--variant" in err and "3: seed=6, optimizer.lr=0.0003" in err
    assert not (tmp_path / "none").exists()
    out = tmp_path / "v2"
    assert export.main(["export", f"--run_dir={straight.run_dir}", f"--out={out}", "--variant=2", "--allow_reference_mismatch"]) == 0
    from safetensors.numpy import load_file

    from geno_lewm_jax.interop import to_reference_state_dict

    exported = load_file(str(tmp_path / "v2" / export.PREDICTOR_FILE))
    _, predictor, _ = export.load_run_modules(straight.run_dir, variant=2)
    for name, value in to_reference_state_dict(predictor).items():
        np.testing.assert_array_equal(exported[name], value)
    _, _, state = _final_state(straight.run_dir)
    stacked = jax.tree.leaves(state["params"]["predictor"])
    mine = jax.tree.leaves(nnx.to_pure_dict(nnx.state(predictor, nnx.Param)))
    assert len(mine) == len(stacked) > 10
    for leaf, want in zip(mine, stacked):
        np.testing.assert_array_equal(leaf, want[2])
    assert any(not np.array_equal(want[2], want[1]) for want in stacked)
