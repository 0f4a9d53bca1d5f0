"""The scalar fixture trainer against geno-lewm 0.2.1's ``run_fixture_training``."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
from geno_lewm.config import config_to_dict, load_default
from geno_lewm.config import load_config as ref_load_config
from geno_lewm.training import run_fixture_training as ref_run

from geno_lewm_jax.config import ConfigWarning, from_dict, load_config
from geno_lewm_jax.errors import InputError
from geno_lewm_jax.training import (
    FIXTURE_CHECKPOINT_NAME,
    FIXTURE_DATASET_MANIFEST_NAME,
    FIXTURE_LOG_NAME,
    FIXTURE_METRICS_NAME,
    FIXTURE_TRAINING_METADATA_NAME,
    run_fixture_training,
)

JSON_ARTIFACTS = (
    FIXTURE_CHECKPOINT_NAME,
    FIXTURE_DATASET_MANIFEST_NAME,
    FIXTURE_METRICS_NAME,
    FIXTURE_TRAINING_METADATA_NAME,
)
# Free-text values are this project's own wording; everything else must be the reference's.
PROSE = {"notes", "warning", "claim_boundary", "hardware", "runtime", "determinism", "result_summary", "limitations"}
META = dict(command="geno-lewm-train --fixture-smoke", commit_sha="abc1234", package_version="0.1.0")


def strict_load(path: Path):
    def refuse(token: str):
        raise AssertionError(f"{path.name} holds the non-strict JSON token {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def comparable(value, key=None):
    """Drop prose values and the wall-clock timestamp, keep keys and every number and identifier."""
    if isinstance(value, dict):
        return {k: ("<prose>" if k in PROSE else comparable(v, k)) for k, v in value.items() if k != "generated_at"}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def run_both(tmp_path: Path, seed: int, steps: int, resume_at: int | None = None):
    ours_cfg = load_config(overrides={"seed": seed, "run_id": "fixture-run", "deterministic": True})
    ref_cfg = ref_load_config({"seed": seed, "run_id": "fixture-run", "deterministic": True})
    out = {}
    for name, run, cfg in (("ours", run_fixture_training, ours_cfg), ("ref", ref_run, ref_cfg)):
        run_dir = tmp_path / name
        if resume_at is None:
            report = run(config=cfg, run_dir=run_dir, steps=steps, **META)
        else:
            run(config=cfg, run_dir=run_dir, steps=resume_at, **META)
            report = run(config=cfg, run_dir=run_dir, steps=steps, resume_from=run_dir / FIXTURE_CHECKPOINT_NAME, **META)
        out[name] = (report, run_dir)
    return out


@pytest.mark.parametrize("seed", [0, 7, 104729])
@pytest.mark.parametrize("resume_at", [None, 30])
def test_artifacts_equal_the_reference(tmp_path, seed, resume_at):
    runs = run_both(tmp_path, seed, 50, resume_at)
    (ours, ours_dir), (ref, ref_dir) = runs["ours"], runs["ref"]
    assert ours.final_loss == ref.final_loss
    assert (ours.steps_completed, ours.resumed_from_step) == (ref.steps_completed, ref.resumed_from_step)
    assert set(ours.to_dict()) == set(ref.to_dict())
    for name in JSON_ARTIFACTS:
        assert comparable(strict_load(ours_dir / name)) == comparable(json.loads((ref_dir / name).read_text())), name
        assert (ours_dir / name).read_text().endswith("}\n")
    assert (ours_dir / FIXTURE_LOG_NAME).read_text() == (ref_dir / FIXTURE_LOG_NAME).read_text()


def test_resume_is_exact(tmp_path):
    cfg = load_config(overrides={"seed": 3})
    straight = run_fixture_training(config=cfg, run_dir=tmp_path / "a", steps=50, **META)
    run_fixture_training(config=cfg, run_dir=tmp_path / "b", steps=30, **META)
    resumed = run_fixture_training(
        config=cfg, run_dir=tmp_path / "b", steps=50, resume_from=tmp_path / "b" / FIXTURE_CHECKPOINT_NAME, **META
    )
    assert resumed.final_loss == straight.final_loss
    a = strict_load(tmp_path / "a" / FIXTURE_CHECKPOINT_NAME)
    b = strict_load(tmp_path / "b" / FIXTURE_CHECKPOINT_NAME)
    assert a == b
    log = (tmp_path / "b" / FIXTURE_LOG_NAME).read_text().splitlines()
    assert log[30] == "resume_from_step=30 target_steps=50 seed=3" and len(log) == 51


def test_reference_test_vectors(tmp_path):
    report = run_fixture_training(config=load_config(overrides={"seed": 0}), run_dir=tmp_path, steps=50, **META)
    assert report.final_loss == pytest.approx(0.001757140364265216, rel=1e-12)
    first = (tmp_path / FIXTURE_LOG_NAME).read_text().splitlines()[0]
    assert first == "step=1 loss=0.080953193048 weight=0.183160036509 collapse_var_min=1.0 nan_loss=false"


def test_bad_steps_and_checkpoints_are_input_errors(tmp_path):
    cfg = load_config(overrides={"seed": 1})
    for steps in (0, -3, True, 2.5):
        with pytest.raises(InputError):
            run_fixture_training(config=cfg, run_dir=tmp_path / "s", steps=steps, **META)
    run_fixture_training(config=cfg, run_dir=tmp_path / "r", steps=5, **META)
    ckpt = tmp_path / "r" / FIXTURE_CHECKPOINT_NAME
    with pytest.raises(InputError, match="at or beyond"):
        run_fixture_training(config=cfg, run_dir=tmp_path / "r", steps=5, resume_from=ckpt, **META)
    with pytest.raises(InputError, match="seed"):
        run_fixture_training(config=load_config(overrides={"seed": 2}), run_dir=tmp_path / "r", steps=9, resume_from=ckpt, **META)
    payload = strict_load(ckpt)
    cases = {
        "missing.json": None,
        "bad.json": "{not json",
        "list.json": "[]",
        "kind.json": json.dumps({**payload, "model_kind": "other"}),
        "step.json": json.dumps({**payload, "step": "3"}),
        "weight.json": json.dumps({**payload, "weight": math.inf}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(InputError) as info:
            run_fixture_training(config=cfg, run_dir=tmp_path / "r", steps=9, resume_from=path, **META)
        assert str(path) == info.value.details["path"], name


def test_the_reference_default_config_runs_the_fixture_like_the_reference(tmp_path):
    """geno-lewm 0.2.1's load_default("train") (warmup beyond its 50 steps) runs here, passed as is or imported."""
    reference = load_default("train")
    want = ref_run(config=reference, run_dir=tmp_path / "ref", steps=6, **META)
    with pytest.warns(ConfigWarning, match="warmup_steps=1000 >= training.max_steps=50"):
        imported = from_dict(config_to_dict(reference))
    with pytest.warns(ConfigWarning, match="warmup_steps=1000 >= training.max_steps=50"):
        as_is = run_fixture_training(config=reference, run_dir=tmp_path / "as-is", steps=6, **META)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # an imported Config is not validated again
        again = run_fixture_training(config=imported, run_dir=tmp_path / "imported", steps=6, **META)
    for got in (as_is, again):
        assert (got.final_loss, got.run_id) == (want.final_loss, "phase1-default")
        assert got.log_path.read_text() == want.log_path.read_text()
    with pytest.raises(InputError, match="config must be"):
        run_fixture_training(config="train.yaml", run_dir=tmp_path / "bad", steps=6, **META)
