"""The embedded default (configs/tiny.flags) trains end to end, and its weights export to the reference."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from job_support import REPO, job_args, job_env, run_main
from sinks_support import log_curves, tb_scalars

pytestmark = pytest.mark.slow


def test_tiny_flagfile_bootstraps_and_trains_200_steps(tmp_path):
    """The README's first command, with its cache and run dirs redirected into tmp_path."""
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [
            sys.executable, "-m", "geno_lewm_jax.main", "--flagfile=configs/tiny.flags",
            f"--model_dir={cache / 'standin-carbon'}", f"--dataset_dir={cache / 'synthetic-snapshot'}",
            f"--run_dir={tmp_path / 'run'}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=job_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert "run tiny finished: 200/200 steps" in proc.stdout and str(run_dir) in proc.stdout
    for name in ("training_run.json", "metrics.json", "training_preflight_report.json", "training_config.effective.yaml",
                 "flags.txt", "dataset_manifest.json", "train.log", "training_curves.png"):
        assert (run_dir / name).is_file(), name
    for name in ("training_run.json", "metrics.json", "training_preflight_report.json"):
        json.loads((run_dir / name).read_text(), parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))
    events = [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in (run_dir / "train.log").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"train.start", "train.progress", "training.collapse.metrics", "train.checkpoint", "train.end"} <= kinds
    progress = [e for e in events if e["event"] == "train.progress"]
    assert {"loss", "pred_loss", "kl_reg", "lr", "grad_norm", "step_time", "tuples_per_s"} <= set(progress[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps_completed"] == 200 and np.isfinite(metrics["train_loss"])
    # The demo learns: skill over the no-change baseline rises from 0 (the untrained predictor returns
    # the source state) to >= 0.2, and the KL of the frozen targets raises no alert at every validation.
    skill = {row["step"]: row["val_delta_r2"] for row in metrics["collapse_history"]}
    assert skill[0] <= 0.05 and skill[200] >= 0.2 and metrics["metrics"]["val_delta_r2"] == skill[200]
    assert metrics["metrics"]["collapse_alert_count"] == 0 and "ALERT" not in proc.stdout
    assert f"val_delta_r2 {skill[200]:.3f}" in proc.stdout and "collapse alerts: 0" in proc.stdout
    curves = tb_scalars(run_dir / "tb")  # what `tensorboard --logdir` shows
    assert curves == log_curves(run_dir) and [s for s, _ in curves["train/loss"]] == [e["step"] for e in progress]


def test_export_loads_into_the_reference_with_equal_predictions(job_inputs, tmp_path):
    """Weights exported from a trained run load strictly into geno-lewm 0.2.1 and predict what ours predict."""
    torch = pytest.importorskip("torch")
    from geno_lewm.action import ActionEncoder as RefActionEncoder
    from geno_lewm.action import RelEdit
    from geno_lewm.config.loader import load_config as ref_load_config
    from geno_lewm.predictor import build_predictor as ref_build_predictor
    from safetensors.torch import load_file

    from geno_lewm_jax.export import load_run_modules
    from geno_lewm_jax.export import main as export_main
    from geno_lewm_jax.model import featurize_edits

    run_dir = tmp_path / "run"
    # The reference hard-codes d_hidden = ffn = 768 and 2 self blocks, so train that shape here.
    proc = run_main(job_args(job_inputs, run_dir, "--max_steps=4", "--collapse_log_every_steps=2",
                             "--d_hidden=768", "--ffn_dim=768", "--n_heads=8", "--n_self_layers=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "export"
    assert export_main(["export", f"--run_dir={run_dir}", f"--out={out}"]) == 0
    assert export_main(["export", f"--run_dir={run_dir}", f"--out={out}"]) == 2  # never overwrites silently

    config, ours_pred, ours_act = load_run_modules(run_dir)
    ref_cfg = ref_load_config({
        "predictor": {"d_state": config.predictor.d_state, "n_layers": config.predictor.n_layers, "n_heads": config.predictor.n_heads},
        "action": {"d_action": config.action.d_action, "max_len": config.action.max_len},
    })
    ref_pred = ref_build_predictor(ref_cfg)
    ref_act = RefActionEncoder(d_action=config.action.d_action)
    ref_pred.load_state_dict(load_file(str(out / "predictor.safetensors")), strict=True)
    ref_act.load_state_dict(load_file(str(out / "action_encoder.safetensors")), strict=True)

    rng = np.random.default_rng(0)
    edits = [[RelEdit(100, 0, "A", "C")], [RelEdit(5, 1, "G", "GTT"), RelEdit(40, 2, "ACG", "A")]]
    mask = np.array([[True, False], [True, True]])
    state = rng.normal(size=(2, config.predictor.d_state)).astype(np.float32)
    with torch.no_grad():
        ref_out = ref_pred(torch.from_numpy(state), ref_act(edits), torch.from_numpy(mask)).numpy()
    features = featurize_edits(edits, k=2)
    ours = np.asarray(ours_pred(state, ours_act(features), mask))
    np.testing.assert_allclose(ours, ref_out, atol=1e-5)
