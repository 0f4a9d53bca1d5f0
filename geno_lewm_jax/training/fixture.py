"""The fixture trainer: a deterministic scalar smoke run for CLI and release plumbing.

Not a model. It fits one weight ``w`` to a target ``theta`` on the stream
``x_t = 2 u(seed, "x", t) - 1`` with squared error and step size
``0.2 / sqrt(t + 3)``, where ``u(seed, name, t)`` is the first 8 bytes of
SHA-256("<seed>:<name>:<t>") as a big-endian integer over 2^64 - 1. Every
value depends only on (seed, t), so a resume is exact by construction. The
artifacts have geno-lewm 0.2.1's file names, JSON keys, identifiers, log
line format and numbers (the prose values are this project's own), and all
JSON here is strict (no NaN or Infinity tokens).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geno_lewm_jax.config import Config, from_dict, to_dict, write_yaml
from geno_lewm_jax.errors import InputError
from geno_lewm_jax.run_dir import write_json

FIXTURE_CHECKPOINT_NAME = "fixture_predictor_checkpoint.json"
FIXTURE_DATASET_MANIFEST_NAME = "dataset_manifest.json"
FIXTURE_LOG_NAME = "train.log"
FIXTURE_METRICS_NAME = "metrics.json"
FIXTURE_TRAINING_METADATA_NAME = "training_run.json"
FIXTURE_CONFIG_NAME = "config.resolved.yaml"
SCHEMA_VERSION = "1.0.0"
MODEL_KIND = "fixture_scalar_predictor"
SNAPSHOT_ID = "geno-lewm-fixture-snv-smoke-v1"
GENERATED_BY = "tools.release.training_run"


@dataclasses.dataclass(frozen=True, slots=True)
class FixtureTrainingReport:
    """Where the fixture run wrote what, and how it ended."""

    run_id: str
    run_dir: Path
    steps_requested: int
    steps_completed: int
    resumed_from_step: int
    final_loss: float
    checkpoint_path: Path
    metrics_path: Path
    log_path: Path
    config_path: Path
    dataset_manifest_path: Path
    training_metadata_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: str(getattr(self, f.name)) if isinstance(getattr(self, f.name), Path) else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }


@dataclasses.dataclass(frozen=True, slots=True)
class _Scalar:
    step: int
    seed: int
    weight: float
    target: float
    loss: float


def _unit(seed: int, name: str, step: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / float(2**64 - 1)


def _start(seed: int) -> _Scalar:
    weight = _unit(seed, "init", 0) - 0.5
    target = 0.25 + _unit(seed, "target", 0) * 0.5
    return _Scalar(step=0, seed=seed, weight=weight, target=target, loss=(weight - target) * (weight - target))


def _advance(state: _Scalar, step: int) -> _Scalar:
    # the loss is measured before the update, on this step's sample
    x = _unit(state.seed, "x", step) * 2.0 - 1.0
    error = state.weight * x - state.target * x
    lr = 0.2 / math.sqrt(step + 3.0)
    moved = state.weight - 2.0 * error * x * lr
    return _Scalar(step=step, seed=state.seed, weight=moved, target=state.target, loss=error * error)


def _read_checkpoint(path: Path, *, seed: int) -> _Scalar:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            f"failed to read fixture checkpoint {path}: {exc.strerror or exc}", details={"path": str(path)}
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"fixture checkpoint JSON is invalid: {path} (line {exc.lineno}, column {exc.colno})",
            details={"path": str(path), "line": exc.lineno, "column": exc.colno},
        ) from None
    if not isinstance(payload, dict):
        raise InputError(f"fixture checkpoint must be a JSON object: {path}", details={"path": str(path)})
    if payload.get("model_kind") != MODEL_KIND:
        raise InputError(
            f"checkpoint is not a fixture smoke checkpoint: {path} has model_kind {payload.get('model_kind')!r}",
            details={"path": str(path), "field": "model_kind"},
        )

    def integer(key: str) -> int:
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"fixture checkpoint {key} must be an integer: {path}", details={"path": str(path), "field": key})
        return value

    def number(key: str) -> float:
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(
                f"fixture checkpoint {key} must be a finite number: {path}", details={"path": str(path), "field": key}
            )
        return float(value)

    ckpt_seed = integer("seed")
    if ckpt_seed != seed:
        raise InputError(
            f"fixture checkpoint seed does not match resolved config: checkpoint seed {ckpt_seed}, config seed {seed}",
            details={"path": str(path), "field": "seed", "checkpoint_seed": ckpt_seed, "config_seed": seed},
        )
    return _Scalar(step=integer("step"), seed=ckpt_seed, weight=number("weight"), target=number("target"), loss=number("loss"))


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _manifest(config: Config) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "snapshot_id": SNAPSHOT_ID,
        "generated_by": "geno-lewm-train --fixture-smoke",
        "run_id": config.run_id,
        "sources": [
            {
                "name": "deterministic scalar SNV smoke stream",
                "revision": "fixture-v1",
                "license": "Apache-2.0",
                "notes": "Synthetic scalar stream for pipeline checks; it contains no genomic data.",
            }
        ],
        "splits": {"train": {"records": 1, "description": "deterministic scalar stream"}},
    }


def _checkpoint(config: Config, state: _Scalar) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model_kind": MODEL_KIND,
        "run_id": config.run_id,
        "step": state.step,
        "seed": state.seed,
        "deterministic": config.deterministic,
        "weight": state.weight,
        "target": state.target,
        "loss": state.loss,
        "warning": "Scalar smoke-test weight only; this is not a trained GenoLeWM predictor.",
    }


def _metrics(config: Config, state: _Scalar, *, steps: int, resumed_from_step: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": config.run_id,
        "sample_count": steps,
        "resumed_from_step": resumed_from_step,
        "metrics": {
            "train_loss": state.loss,
            "fixture_weight": state.weight,
            "fixture_target": state.target,
            "collapse_var_min": {"value": 1.0},
            "nan_loss_count": 0,
        },
        "claim_boundary": "Pipeline smoke metrics; they say nothing about model quality.",
    }


def _run_record(config: Config, *, command: str, commit_sha: str, package_version: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": config.run_id,
        "generated_by": GENERATED_BY,
        "generated_at": _utc_now(),
        "command": command,
        "commit_sha": commit_sha,
        "package_version": package_version,
        "dataset_snapshot_id": SNAPSHOT_ID,
        "dataset_manifest": FIXTURE_DATASET_MANIFEST_NAME,
        "training_config": FIXTURE_CONFIG_NAME,
        "metrics": FIXTURE_METRICS_NAME,
        "logs": [FIXTURE_LOG_NAME],
        "checkpoint_files": [FIXTURE_CHECKPOINT_NAME],
        "status": "completed",
        "hardware": ["Any CPU; the fixture needs no accelerator."],
        "runtime": ["geno_lewm_jax scalar fixture in the Python standard library; no model is loaded."],
        "seeds": {"python": config.seed, "fixture_stream": config.seed},
        "determinism": (
            "Every fixture value is a hash of (seed, step), so reruns and resumes are exact; "
            "this says nothing about the determinism of a real training run."
        ),
        "monitoring": {"collapse_monitoring": True, "nan_monitoring": True},
        "result_summary": "Finished the scalar fixture run that exercises the training command and its artifacts.",
        "limitations": [
            "A smoke test of the plumbing: results about the model need a real Carbon-backed run.",
            "The checkpoint holds one scalar weight; never publish it as a model.",
        ],
    }


def _own_config(config: Any) -> Config:
    """This project's Config; a mapping or a geno-lewm 0.2.1 config object is imported as YAML is."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return from_dict(config)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return from_dict(to_dict(config))  # type: ignore[arg-type]
    raise InputError(
        f"config must be a geno_lewm_jax Config, a mapping or a geno-lewm config, got {type(config).__name__}",
        details={"field": "config", "type": type(config).__name__},
    )


def run_fixture_training(
    *,
    config: Config | Mapping[str, Any] | Any,
    run_dir: str | Path,
    steps: int = 50,
    resume_from: str | Path | None = None,
    command: str,
    commit_sha: str,
    package_version: str,
) -> FixtureTrainingReport:
    """Train the scalar fixture to ``steps`` total steps (continuing ``resume_from`` if given)."""
    config = _own_config(config)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise InputError(
            f"fixture training steps must be a positive integer, got {steps!r}", details={"field": "steps"}
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = write_yaml(config, run_dir / FIXTURE_CONFIG_NAME)
    manifest_path = write_json(run_dir / FIXTURE_DATASET_MANIFEST_NAME, _manifest(config))

    state = _read_checkpoint(Path(resume_from), seed=config.seed) if resume_from is not None else _start(config.seed)
    resumed_from_step = state.step
    if resumed_from_step >= steps:
        raise InputError(
            f"fixture resume checkpoint is already at or beyond the requested steps ({resumed_from_step} >= {steps})",
            details={"checkpoint_step": resumed_from_step, "steps": steps},
        )

    log_path = run_dir / FIXTURE_LOG_NAME
    with log_path.open("a" if resumed_from_step else "w", encoding="utf-8") as log:
        if resumed_from_step:
            log.write(f"resume_from_step={resumed_from_step} target_steps={steps} seed={config.seed}\n")
        for step in range(resumed_from_step + 1, steps + 1):
            state = _advance(state, step)
            log.write(
                f"step={step} loss={state.loss:.12f} weight={state.weight:.12f} collapse_var_min=1.0 nan_loss=false\n"
            )

    checkpoint_path = write_json(run_dir / FIXTURE_CHECKPOINT_NAME, _checkpoint(config, state))
    metrics_path = write_json(
        run_dir / FIXTURE_METRICS_NAME, _metrics(config, state, steps=steps, resumed_from_step=resumed_from_step)
    )
    record_path = write_json(
        run_dir / FIXTURE_TRAINING_METADATA_NAME,
        _run_record(config, command=command, commit_sha=commit_sha, package_version=package_version),
    )
    return FixtureTrainingReport(
        run_id=config.run_id,
        run_dir=run_dir,
        steps_requested=steps,
        steps_completed=state.step,
        resumed_from_step=resumed_from_step,
        final_loss=state.loss,
        checkpoint_path=checkpoint_path,
        metrics_path=metrics_path,
        log_path=log_path,
        config_path=config_path,
        dataset_manifest_path=manifest_path,
        training_metadata_path=record_path,
    )


__all__ = [
    "FIXTURE_CHECKPOINT_NAME",
    "FIXTURE_CONFIG_NAME",
    "FIXTURE_DATASET_MANIFEST_NAME",
    "FIXTURE_LOG_NAME",
    "FIXTURE_METRICS_NAME",
    "FIXTURE_TRAINING_METADATA_NAME",
    "FixtureTrainingReport",
    "run_fixture_training",
]
