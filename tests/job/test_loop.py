"""The training loop on its own terms: it never waits on the device between boundaries, raises a
non-finite step late but with the state from before it, and accounts for its wall time by phase.

The runs are in-process on one device with a synthetic state encoder (no Carbon), so they cost
a tiny predictor's compile and little else.
"""

from __future__ import annotations

import hashlib
import io
import json
import time

import jax
import numpy as np
import pytest

from job_support import job_args
from sinks_support import log_curves, tb_scalars

from geno_lewm_jax.errors import NaNLossError
from geno_lewm_jax.flags import config_from_argv
from geno_lewm_jax.training import trainer as trainer_module
from geno_lewm_jax.training.carbon import run_carbon_training

D_STATE = 64  # configs/tiny.flags
DISPATCH_SLEEP = 0.03  # seconds the recorded run adds to every dispatch


class HashEncoder:
    """A state per (window, locus) drawn from their hash: deterministic, instant, torch-free.

    ``delay`` seconds per call make the producer the loop's bottleneck; ``poison`` windows
    come back NaN.
    """

    d_state = D_STATE
    contract = "l2_normalized_v2"
    identity = "hash-encoder/1"

    def __init__(self, *, delay: float = 0.0, poison: str | None = None) -> None:
        self.delay = delay
        self.poison = poison

    def encode_batch(self, sequences, loci):
        time.sleep(self.delay)
        out = np.empty((len(sequences), D_STATE), dtype=np.float32)
        for i, (seq, locus) in enumerate(zip(sequences, loci)):
            seed = int.from_bytes(hashlib.sha256(f"{seq}|{locus}".encode()).digest()[:8], "little")
            vec = np.random.default_rng(seed).standard_normal(D_STATE)
            out[i] = np.nan if seq == self.poison else vec / np.linalg.norm(vec)
        return out

    def encode_batch_jax(self, sequences, loci):
        return self.encode_batch(sequences, loci)


def _config(job_inputs, run_dir, *extra):
    return config_from_argv(["prog", *job_args(job_inputs, run_dir, *extra)])


def _events(run_dir, kind):
    lines = (run_dir / "train.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


@pytest.fixture(scope="module")
def recorded_run(job_inputs, tmp_path_factory):
    """8 steps logged every 4, with every dispatch and fetch of the trainer recorded in order."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    dispatch, resolve = trainer_module.Trainer.dispatch_step, trainer_module.Trainer.resolve_steps

    def recording_dispatch(self, batch, step):
        calls.append(("dispatch", (step,)))
        time.sleep(DISPATCH_SLEEP)
        return dispatch(self, batch, step)

    def recording_resolve(self, pending):
        calls.append(("fetch", tuple(p.step for p in pending)))
        return resolve(self, pending)

    run_dir = tmp_path_factory.mktemp("loop") / "run"
    # kl_source=predictions makes the monitor judge kl_reg, which alerts at every validation here.
    config = _config(job_inputs, run_dir, "--max_steps=8", "--log_every_steps=4", "--checkpoint_every_steps=8",
                     "--collapse_log_every_steps=8", "--kl_source=predictions")
    terminal = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module.Trainer, "dispatch_step", recording_dispatch)
        patch.setattr(trainer_module.Trainer, "resolve_steps", recording_resolve)
        report = run_carbon_training(
            config, encoder=HashEncoder(delay=0.05), devices=jax.devices()[:1], progress_stream=terminal
        )
    return report, calls, terminal.getvalue()


def test_the_loop_dispatches_ahead_and_fetches_scalars_in_bulk_at_log_steps(recorded_run):
    report, calls, _ = recorded_run
    assert report.steps_completed == 8
    fetches = [steps for kind, steps in calls if kind == "fetch"]
    assert fetches == [(1,), (2, 3, 4), (5, 6, 7, 8)]  # step 1 always reports (time to first step)
    order = [(kind, steps[0]) for kind, steps in calls]
    # step 3 (and 4) was queued before step 2's scalars were fetched
    assert order.index(("dispatch", 3)) < order.index(("fetch", 2))
    assert order.index(("dispatch", 4)) < order.index(("fetch", 2))


def test_the_phase_timeline_accounts_for_each_interval(recorded_run):
    """Every instant of an interval is in one phase: they add up to its wall time, and the 30 ms the
    recorded run sleeps in each dispatch show up under dispatch."""
    report, _, _ = recorded_run
    progress = _events(report.run_dir, "train.progress")
    assert [e["step"] for e in progress] == [1, 4, 8]
    names = ("producer_wait", "dispatch", "device_wait", "validation", "checkpoint", "logging", "host")
    for event, steps in zip(progress, (1, 3, 4)):
        phases = sum(event[f"time_{name}"] for name in names)
        assert phases == pytest.approx(event["time_wall"], rel=0.05)
        assert event["time_dispatch"] >= steps * DISPATCH_SLEEP
    # the producer's own split: 50 ms of (synthetic) encoding per batch, then placing it on the device
    assert progress[-1]["producer_encode"] >= 4 * 0.05 and progress[-1]["producer_prepare"] > 0
    summary = json.loads((report.run_dir / "metrics.json").read_text())
    assert summary["history"][-1]["time_wall"] == progress[-1]["time_wall"]


def test_tensorboard_holds_every_scalar_of_train_log_at_its_step(recorded_run):
    """One metrics path: the event files, train.log and metrics.json hold the same numbers."""
    report, _, _ = recorded_run
    curves = log_curves(report.run_dir)
    assert {"train/loss", "train/lr", "time/time_wall", "val/val_loss", "collapse/pred_var_per_dim", "checkpoint/step"} <= set(curves)
    assert tb_scalars(report.run_dir / "tb") == curves
    summary = json.loads((report.run_dir / "metrics.json").read_text())
    progress = [{k: v for k, v in e.items() if k not in ("event", "ts")} for e in _events(report.run_dir, "train.progress")]
    assert summary["history"] == progress
    rows = {row["step"]: row for row in summary["collapse_history"]}
    assert sorted(rows) == [0, 8]
    for event in _events(report.run_dir, "training.collapse.metrics") + _events(report.run_dir, "train.validation"):
        assert {k: v for k, v in event.items() if k not in ("event", "ts")}.items() <= rows[event["step"]].items()


def test_validations_score_skill_and_the_terminal_shows_start_up_and_alerts(recorded_run):
    """Skill over the no-change baseline in every validation, metrics.json and the end report; start-up
    phase lines before step 1; each validation's collapse alert as one terminal line."""
    report, _, terminal = recorded_run
    rows = {row["step"]: row for row in json.loads((report.run_dir / "metrics.json").read_text())["collapse_history"]}
    assert rows[0]["val_delta_r2"] == pytest.approx(0.0, abs=1e-5)  # the untrained predictor returns the source
    summary = json.loads((report.run_dir / "metrics.json").read_text())["metrics"]
    assert summary["val_delta_r2"] == report.val_delta_r2 == rows[8]["val_delta_r2"]
    assert summary["val_cos_skill"] == rows[8]["val_cos_skill"]
    assert summary["collapse_alert_count"] == report.collapse_alert_count == 2
    assert _events(report.run_dir, "train.end")[0]["val_delta_r2"] == report.val_delta_r2
    lines = terminal.splitlines()
    first_step = lines.index(next(line for line in lines if line.startswith("step 1/8")))
    assert any(line.startswith("compiling the train step for K=") for line in lines[:first_step])
    assert lines[0].startswith("reading the dataset snapshot")
    alerts = [line for line in lines if line.startswith("ALERT")]
    assert [a.split(":")[0] for a in alerts] == ["ALERT collapse alert at step 0", "ALERT collapse alert at step 8"]
    assert all("kl_reg" in a for a in alerts)


def test_a_non_finite_step_is_raised_at_the_next_log_step_with_the_state_from_before_it(job_inputs, tmp_path):
    """Step 3's batch is poisoned; scalars are fetched at step 4; the checkpoint of step 2 is the last one."""
    from geno_lewm_jax.data import TupleStream, load_snapshot

    run_dir = tmp_path / "run"
    config = _config(job_inputs, run_dir, "--max_steps=8", "--log_every_steps=4", "--checkpoint_every_steps=2",
                     "--collapse_log_every_steps=8", "--nan_policy=raise")
    stream = TupleStream.from_config(load_snapshot(config.data.dataset_dir), config)
    batches = stream.take(3)
    poisoned = batches[2].tuples[0].window
    assert all(poisoned != t.window for b in batches[:2] for t in b.tuples)
    with pytest.raises(NaNLossError) as info:
        run_carbon_training(config, encoder=HashEncoder(poison=poisoned), devices=jax.devices()[:1])
    assert info.value.details["step"] == 3
    assert [e["step"] for e in _events(run_dir, "train.checkpoint")] == [2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
