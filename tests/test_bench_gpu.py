"""``bench/gpu.py``'s command line, time plan, steady-state arithmetic and goal checks (no GPU, no job: a second).

The benchmark itself needs a GPU; ``python bench/gpu.py --smoke`` runs every
section on the CPU. These tests pin down what decides its verdicts.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import gpu  # noqa: E402
import gpu_plan  # noqa: E402
from gpu_jobs import fill_cache, fill_job, steady_state  # noqa: E402


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
    defaults = gpu.parse_args([])
    assert gpu._timed_steps(defaults, 8) == 200  # the issue's count where the 8 minutes allow it
    assert gpu._timed_steps(gpu.parse_args(["--main_timed_steps=200"]), 64) == 200  # one value: every batch


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


# --- the time plan ------------------------------------------------------------------------------
def test_default_plan_fits_the_budget_with_about_a_minute_to_spare():
    plan = gpu.plan_row(gpu.parse_args([]))
    assert set(plan["estimate_s"]) == {"prepare", "step", "carbon", "main_deterministic", "main_nondeterministic", "reference"}
    assert 400 <= plan["total_s"] <= plan["budget_s"] - 45 and plan["budget_s"] == 480
    assert f"Total {plan['total_s']:.0f} s" in gpu.__doc__  # the docstring's arithmetic is the plan's
    assert plan["short_of_issue"] == ["b64-uncached-det: 70 timed steps, not the issue's 200 (200 would add ~103 s)"]


def test_doubling_the_timed_steps_or_the_issues_200_at_batch_64_does_not_fit():
    for argv in (["--main_timed_steps=400,140"], ["--main_timed_steps=200"]):
        assert gpu.plan_row(gpu.parse_args(argv))["total_s"] > 480, argv


def test_estimates_are_computed_from_the_counts():
    base = gpu.estimates(gpu.parse_args([]))
    more = gpu.estimates(gpu.parse_args(["--bound_batches=16", "--reference_steps=7"]))
    assert more["carbon"] - base["carbon"] == pytest.approx(10 * 0.793, abs=0.1)  # ten more batches of 64 tuples
    assert more["reference"] - base["reference"] == pytest.approx(2 * gpu_plan.REFERENCE_STEP_S)
    only = gpu.estimates(gpu.parse_args(["--sections=carbon,reference"]))
    assert set(only) == {"prepare", "carbon", "reference"}
    assert only["prepare"] == pytest.approx(gpu_plan.WORKER_S + gpu_plan.SNAPSHOT_S + gpu_plan.STANDIN_S)  # nothing compiles


def test_over_budget_refuses_to_start_with_one_line_naming_a_flag(capsys, tmp_path):
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--main_timed_steps=400,140", f"--work_dir={work}"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["section"] == "plan"  # the plan is printed, nothing else ran
    assert len(err.strip().splitlines()) == 1 and "--main_timed_steps" in err and "--budget_s=480" in err
    assert not work.exists()


def test_smoke_skips_the_budget_check():
    args = gpu.parse_args(["--smoke", "--budget_s=1"])
    plan = gpu.plan_row(args)
    gpu.check_budget(plan, args)  # no SystemExit: the H200 estimates say nothing about a CPU
    assert plan["budget_check"].startswith("skipped")


def test_cached_jobs_must_find_every_state_the_fill_job_encoded(capsys):
    specs = gpu._job_specs(gpu.parse_args([]), True)
    assert fill_job(specs).name == "b64-uncached-det"  # 80 x 64 tuples against b8's 210 x 8
    with pytest.raises(SystemExit) as exit_info:
        gpu.parse_args(["--cached_timed_steps=40"])  # (4 + 40 + 4) x 256 tuples > 5,120
    assert exit_info.value.code == 2
    assert "--cached_timed_steps" in capsys.readouterr().err
    gpu.parse_args(["--cached_timed_steps=40", "--sections=step"])  # no main section: nothing to fill


def test_fill_cache_stores_every_row_the_encoder_computes_and_lets_go(tmp_path):
    import numpy as np
    import torch
    from bridge import FeatureCache
    from bridge.cached import cache_keys

    class Encoder:  # the CarbonEncoder attributes the cache keys read, and its one encoding path
        identity, contract = "carbon-test", "l2_normalized_v2"

        def encode_tensor(self, sequences, loci):
            return torch.arange(len(sequences) * 4, dtype=torch.float32).reshape(len(sequences), 4) + 1

    encoder, seqs, loci = Encoder(), ["ACGT" * 8, "TTGA" * 8], [3, 5]
    with fill_cache(encoder, tmp_path / "features") as filled:
        out = encoder.encode_tensor(seqs, loci)
    assert filled["rows"] == 2 and "encode_tensor" not in vars(encoder)  # the class's method again
    with FeatureCache(tmp_path / "features") as cache:
        stored = cache.get_many(cache_keys(encoder, seqs, loci))
    np.testing.assert_array_equal(np.stack(stored), out.numpy())
