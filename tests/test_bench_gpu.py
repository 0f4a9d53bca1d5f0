"""``bench/gpu.py``'s command line, steady-state arithmetic and goal checks (no GPU, no job: milliseconds).

The benchmark itself needs a GPU; ``python bench/gpu.py --smoke`` runs every
section on the CPU. These tests pin down what decides its verdicts.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import gpu  # noqa: E402
from gpu_jobs import steady_state  # noqa: E402


def test_help_parses(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--smoke" in out and "--main_timed_steps" in out


def test_smoke_replaces_defaults_but_not_explicit_values():
    args = gpu.parse_args(["--smoke", "--main_batches=16"])
    assert args.main_batches == "16"
    assert args.step_batches == gpu.SMOKE_DEFAULTS["step_batches"]
    assert gpu.parse_args([]).main_timed_steps == 200  # the GPU run times at least 200 steps


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit) as exit_info:
        gpu.parse_args(["--sections=step,warp"])
    assert exit_info.value.code == 2


def _progress(step, wall, validation=0.0, checkpoint=0.0, **extra):
    return {"event": "train.progress", "step": step, "time_wall": wall, "time_validation": validation,
            "time_checkpoint": checkpoint, "time_device_wait": wall / 2, "producer_encode": 0.1, **extra}


def test_steady_state_skips_the_warm_windows_and_excludes_validation_and_checkpoints(tmp_path):
    events = [
        {"event": "train.start"},
        _progress(1, 30.0),  # the compile
        _progress(10, 5.0),  # the producer's ramp-up
        _progress(20, 1.5, validation=0.5, cache_hit_rate=1.0),
        _progress(30, 1.0, cache_hit_rate=0.9),
    ]
    log = tmp_path / "train.log"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = steady_state(log, batch=4)
    assert out["timed_steps"] == 20
    assert out["tuples_per_s"] == pytest.approx(20 * 4 / 2.0)
    assert out["seconds"]["time_device_wait"] == pytest.approx(1.25)
    assert out["cache_hit_rate"] == 0.9


def test_summary_checks_the_issue_goals():
    args = gpu.parse_args([])
    rows = [
        {"section": "bf16_matmul", "tflops": 600.0, "device_kind": "H200"},
        {"section": "carbon_bound", "bound_tuples_per_s": 400.0},
        {"section": "main_job", "side": "geno_lewm_jax", "batch": 64, "cached": False, "deterministic": True, "tuples_per_s": 340.0},
        {"section": "main_job", "side": "geno_lewm_jax", "batch": 64, "cached": False, "deterministic": False, "tuples_per_s": 350.0},
        {"section": "main_job", "side": "geno_lewm_jax", "batch": 8, "cached": False, "deterministic": True, "tuples_per_s": 100.0},
        {"section": "main_job", "side": "geno_lewm_jax", "batch": 256, "cached": True, "deterministic": True, "tuples_per_s": 4000.0},
        {"section": "main_job", "side": "geno-lewm 0.2.1", "batch_size": 8, "tuples_per_s": 0.8},
        {"section": "train_step", "batch": 1024, "compute_dtype": "bfloat16", "fraction_of_bf16_matmul": 0.3},
        {"section": "reference", "error": "worker exited with 1"},
    ]
    out = gpu.summary(rows, args, wall=400.0)
    goals = out["goals"]
    assert goals["uncached_b64_share_of_carbon_bound"] == {"value": 0.85, "goal": ">= 0.8", "met": True}
    assert goals["cached_tuples_per_s"]["met"] is False
    assert goals["step_b1024_bf16_share_of_matmul"]["met"] is True
    assert out["main_b8_ours_over_reference"] == 125.0
    assert out["deterministic_over_nondeterministic_tuples_per_s"]["b64_uncached"] == pytest.approx(340 / 350, abs=1e-4)
    assert out["deterministic_over_nondeterministic_tuples_per_s"]["b256_cached"] is None
    assert out["errors"] == ["reference"]


def test_a_missing_measurement_leaves_its_goal_open():
    out = gpu.summary([], gpu.parse_args([]), wall=1.0)
    assert all(goal["met"] is None for goal in out["goals"].values())
