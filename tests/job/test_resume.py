"""Resume discipline: SIGKILL at random steps, SIGTERM, and a corrupt latest checkpoint."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from job_support import REPO, final_state, job_args, job_env, main_command, run_main
from sinks_support import preempted, tb_scalars

pytestmark = pytest.mark.slow


def progress_steps(run_dir: Path) -> list[int]:
    log = run_dir / "train.log"
    if not log.exists():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if record.get("event") == "train.progress":
            steps.append(record["step"])
    return steps


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(main_command(args), cwd=REPO, env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc: subprocess.Popen[str], run_dir: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if max(progress_steps(run_dir), default=0) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before step {step}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_sigkill_at_three_random_steps_then_resume_is_bitwise_exact(job_inputs, tmp_path):
    reference_dir = tmp_path / "uninterrupted"
    uninterrupted = start(job_args(job_inputs, reference_dir))  # runs beside the killed ones below

    run_dir = tmp_path / "killed"
    kill_steps = sorted(random.Random(1234).sample(range(2, 12), 3))
    for kill_at in kill_steps:
        victim = start(job_args(job_inputs, run_dir))
        wait_for_step(victim, run_dir, kill_at)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        victim.stdout.close()
        victim.stderr.close()
    proc = run_main(job_args(job_inputs, run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err[-3000:]
    ref_step, ref_leaves = final_state(reference_dir)
    assert ref_step == 12
    step, leaves = final_state(run_dir)
    assert step == ref_step
    assert leaves.keys() == ref_leaves.keys()
    for name, ref in ref_leaves.items():
        assert leaves[name].dtype == ref.dtype and np.array_equal(leaves[name], ref), f"{name} differs after resume"
    events = [json.loads(line)["event"] for line in (run_dir / "train.log").read_text().splitlines() if line.strip()]
    assert events.count("train.resume") >= 1 and events[-1] == "train.end"
    assert_same_curves_once_per_step(run_dir, reference_dir)


def assert_same_curves_once_per_step(run_dir: Path, reference_dir: Path) -> None:
    """The killed-and-resumed run's TensorBoard curves are the uninterrupted run's: one point per step,
    equal values (bar wall-clock figures and the feature cache's hit rate, warmer in the killed
    run's dir), in both of TensorBoard's readers."""
    expected = tb_scalars(reference_dir / "tb")
    unrepeatable = ("time/", "train/step_time", "train/tuples_per_s", "train/cache_hit_rate")
    written = tb_scalars(run_dir / "tb", purge=False)
    assert len(written["train/loss"]) > len(expected["train/loss"])  # the killed processes wrote past their checkpoints
    for shown in (tb_scalars(run_dir / "tb"), preempted(written)):
        assert shown.keys() == expected.keys()
        for tag, points in shown.items():
            steps = [step for step, _ in points]
            assert steps == sorted(set(steps)) == [step for step, _ in expected[tag]], tag
            if not tag.startswith(unrepeatable):
                assert points == expected[tag], tag


def test_sigterm_saves_a_checkpoint_and_exits_zero(job_inputs, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(job_args(job_inputs, run_dir, "--max_steps=400", "--checkpoint_every_steps=1000"))
    wait_for_step(proc, run_dir, 3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - sent < 30
    step, _ = final_state(run_dir)
    assert step >= 3 and step == max(progress_steps(run_dir))
    run = json.loads((run_dir / "training_run.json").read_text())
    assert run["stopped_by_signal"] == "SIGTERM" and run["steps_completed"] == step
    assert "stopped by SIGTERM" in out


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(job_inputs, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(job_args(job_inputs, run_dir))
    wait_for_step(proc, run_dir, 7)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) >= 2
    latest = run_dir / "checkpoints" / str(steps[-1])
    biggest = max((p for p in latest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as handle:  # truncate the largest file of the newest checkpoint
        handle.truncate(biggest.stat().st_size // 2)
    proc = run_main(job_args(job_inputs, run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"checkpoint at step {steps[-1]} is unreadable" in proc.stderr
    records = [json.loads(line) for line in (run_dir / "train.log").read_text().splitlines() if line.strip()]
    resumes = [r for r in records if r["event"] == "train.resume"]
    assert resumes[-1]["resumed_from_step"] == steps[-2]
    assert (run_dir / "corrupt" / f"step-{steps[-1]}").is_dir()  # moved aside, not deleted
    assert final_state(run_dir)[0] == 12
