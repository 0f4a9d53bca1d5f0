"""The run directory's summaries: ``metrics.json``, ``training_run.json`` and ``flags.txt``.

They are written once at the end of a process's run, from the
:class:`~geno_lewm_jax.training.run_state.RunState` and what this process
measured (throughput, time to the first step). A process that made no new
step (a finished run started again) keeps the figures its predecessor measured
rather than replacing them with nulls.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import jax

from geno_lewm_jax import __version__
from geno_lewm_jax import config as cfg
from geno_lewm_jax.events import LOG_NAME
from geno_lewm_jax.plots import PLOT_NAME
from geno_lewm_jax.training.run_state import RESUME_FREE_FIELDS, RunState

CONFIG_NAME = "training_config.effective.yaml"
FLAGS_NAME = "flags.txt"
METRICS_NAME = "metrics.json"
RUN_NAME = "training_run.json"
MANIFEST_NAME = "dataset_manifest.json"
CHECKPOINT_DIR = "checkpoints"

MEASURED = ("train_loss", "tuples_per_second", "first_step_seconds")
"""Figures only a process that trained measures; a process that made no step keeps the previous ones."""


def config_to_flags(config: cfg.Config) -> str:
    """The effective config as a flagfile that reproduces it."""
    from geno_lewm_jax.flags import flag_name

    lines = ["# Effective flags of this run: python -m geno_lewm_jax.main --flagfile=<this file>"]
    for spec in cfg.iter_fields():
        value = cfg.get_dotted(config, spec.dotted)
        name = flag_name(spec.dotted)
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, tuple):
            lines.append(f"--{name}={','.join(map(str, value))}")
        elif value is not None:
            lines.append(f"--{name}={value}")
    return "\n".join(lines) + "\n"


def _previous_measurements(path: Path) -> dict[str, Any]:
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        return {k: previous["metrics"].get(k) for k in MEASURED}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def metrics_summary(
    config: cfg.Config,
    state: RunState,
    *,
    snapshot_id: str,
    resumed_from: int,
    measured: dict[str, Any],
    previous_path: Path | None = None,
) -> dict[str, Any]:
    """``metrics.json``; ``measured`` holds MEASURED (None where this process measured nothing)."""
    figures = dict(measured)
    if state.step == resumed_from and previous_path is not None:  # no new step: keep what was measured before
        for key, value in _previous_measurements(previous_path).items():
            if figures.get(key) is None:
                figures[key] = value
    return {
        "schema_version": "1.0.0",
        "run_id": config.run_id,
        "dataset_snapshot_id": snapshot_id,
        "steps_completed": state.step,
        "resumed_from_step": resumed_from,
        "sample_count": state.sample_count,
        "train_loss": figures.get("train_loss"),
        "best_val_loss": state.best_val_loss,
        "metrics": {
            "train_loss": figures.get("train_loss"),
            "sample_count": state.sample_count,
            "nan_skip_count": state.nan_skips,
            "collapse_alert_count": state.collapse_alert_count,
            "tuples_per_second": figures.get("tuples_per_second"),
            "first_step_seconds": figures.get("first_step_seconds"),
            **state.latest_skill(),
        },
        "history": state.history,
        "collapse_history": state.collapse_history,
    }


def run_metadata(
    config: cfg.Config,
    state: RunState,
    *,
    command: str | None,
    status: str,
    stopped_by_signal: str | None,
    identity: dict[str, Any],
    determinism: Any,
    resumed_from: int,
) -> dict[str, Any]:
    """``training_run.json``: provenance, artifacts, hardware and seeds of this run."""
    return {
        "schema_version": "1.0.0",
        "run_id": config.run_id,
        "generated_by": "geno_lewm_jax.training.carbon",
        "package_version": __version__,
        "command": command,
        "status": status,
        "stopped_by_signal": stopped_by_signal,
        "dataset_snapshot_id": identity["dataset_snapshot_id"],
        "encoder_identity": identity["encoder_identity"],
        "state_contract": identity["state_contract"],
        "artifacts": {
            "dataset_manifest": MANIFEST_NAME,
            "training_config": CONFIG_NAME,
            "flags": FLAGS_NAME,
            "metrics": METRICS_NAME,
            "logs": [LOG_NAME],
            "checkpoints": CHECKPOINT_DIR,
            "plot": PLOT_NAME,
            "training_preflight_report": "training_preflight_report.json",
        },
        "hardware": [f"{platform.system()} {platform.machine()}", f"Python {platform.python_version()}"]
        + [f"jax {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s)"],
        "seeds": {"base": config.seed, **identity["seeds"]},
        "determinism": determinism.to_dict() if hasattr(determinism, "to_dict") else str(determinism),
        "resumed_from_step": resumed_from,
        "steps_completed": state.step,
        "config_fingerprint": cfg.fingerprint(config, exclude=RESUME_FREE_FIELDS),
    }


__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_NAME",
    "FLAGS_NAME",
    "MANIFEST_NAME",
    "METRICS_NAME",
    "RUN_NAME",
    "config_to_flags",
    "metrics_summary",
    "run_metadata",
]
