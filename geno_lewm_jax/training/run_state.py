"""The run state a checkpoint's meta carries, and the rule for resuming from one.

A checkpoint is the trainer's arrays (params, optimizer state) plus a JSON
meta: the fixed identity of the run (config, data snapshot, encoder, seeds)
and :class:`RunState`, everything the loop has counted so far. Restoring
both puts the loop exactly where the checkpoint left it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from geno_lewm_jax import config as cfg
from geno_lewm_jax.errors import CheckpointMismatchError

META_SCHEMA = "geno_lewm_jax.checkpoint/2"
"""/2: the predictor's same-typed blocks are stacked on a leading layer axis (issue 14's layer
scan); /1 checkpoints hold one entry per block and cannot be restored into the stacked modules."""
_LAYOUT_CHANGES = {
    "geno_lewm_jax.checkpoint/1": (
        "it was written before the predictor stacked its same-typed blocks on a layer axis"
        " (one entry per block then, one stacked entry per block type now)"
    ),
}
SKILL_FIELDS = ("val_delta_r2", "val_cos_skill")
"""The skill over the no-change baseline that a run's summaries report (see training.skill)."""

# Fields that may change between a run and its resume without changing what is trained.
RESUME_FREE_FIELDS = (
    "runtime.run_dir",
    "runtime.resume",
    "runtime.allow_config_change",
    "runtime.param_sharding",
    "runtime.grad_reduction",
    "runtime.reduction_groups",
    "runtime.coordinator_address",
    "runtime.num_processes",
    "runtime.process_id",
    "runtime.bootstrap_missing",
    "runtime.standin_embeddings",
    "runtime.device",
    "training.log_every_steps",
    "training.checkpoint_every_steps",
    "training.keep_checkpoints",
    "training.stop_on_collapse",
    "encoder.feature_cache",
    "encoder.feature_cache_dir",
    "encoder.encode_batch_size",
    "data.prefetch_batches",
    "observability.log_level",
    "observability.profile_steps",
    "observability.tensorboard",
    "observability.wandb_project",
    "observability.wandb_entity",
    "observability.wandb_run_name",
    "observability.wandb_mode",
    "runtime.compilation_cache_dir",
    "runtime.torch_cpu_threads",
    "predictor.remat",
    "predictor.scan_layers",
)


@dataclasses.dataclass
class RunState:
    """What the loop has done so far: restored from a checkpoint's meta, saved into the next one."""

    step: int = 0
    cursor: dict[str, Any] | None = None  # the data stream's position right after ``step``
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # train.progress rows
    collapse_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # validation rows
    best_val_loss: float | None = None
    sample_count: int = 0
    nan_skips: int = 0
    collapse_alert_count: int = 0
    collapse_baseline: float | None = None  # the collapse monitor's step-0 pairwise distance

    def to_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "cursor": self.cursor,
            "history": self.history,
            "collapse_history": self.collapse_history,
            "best_val_loss": self.best_val_loss,
            "sample_count": self.sample_count,
            "nan_skips": self.nan_skips,
            "collapse_alert_count": self.collapse_alert_count,
            "collapse_baseline": self.collapse_baseline,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "RunState":
        return cls(
            step=int(meta["step"]),
            cursor=meta["cursor"],
            history=list(meta.get("history", [])),
            collapse_history=list(meta.get("collapse_history", [])),
            best_val_loss=meta.get("best_val_loss"),
            sample_count=int(meta.get("sample_count", 0)),
            nan_skips=int(meta.get("nan_skips", 0)),
            collapse_alert_count=int(meta.get("collapse_alert_count", 0)),
            collapse_baseline=meta.get("collapse_baseline"),
        )

    def event_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Which emitted events' fields the history lists hold (the metrics path appends to them)."""
        return {
            "train.progress": self.history,
            "training.collapse.metrics": self.collapse_history,
            "train.validation": self.collapse_history,
        }

    def latest_skill(self) -> dict[str, float | None]:
        """``val_delta_r2`` and ``val_cos_skill`` of the latest validation that measured them (None before one)."""
        for row in reversed(self.collapse_history):
            if "val_delta_r2" in row:
                return {key: row.get(key) for key in SKILL_FIELDS}
        return dict.fromkeys(SKILL_FIELDS)

    def note_validation(self, val_loss: float, alerts: int) -> None:
        """Count one validation's alerts; the best loss only moves on a finite improvement."""
        self.collapse_alert_count += alerts
        if val_loss == val_loss and abs(val_loss) != float("inf"):
            if self.best_val_loss is None or val_loss < self.best_val_loss:
                self.best_val_loss = val_loss


def run_identity(
    config: cfg.Config, *, snapshot_id: str, encoder_identity: str | None, state_contract: str, seeds: dict[str, int]
) -> dict[str, Any]:
    """The part of a checkpoint's meta that is fixed for the whole run (and, for a sweep, its variants)."""
    identity = {
        "schema": META_SCHEMA,
        "run_id": config.run_id,
        "horizon": config.training.max_steps,
        "config": cfg.to_dict(config),
        "config_fingerprint": cfg.fingerprint(config, exclude=RESUME_FREE_FIELDS),
        "dataset_snapshot_id": snapshot_id,
        "encoder_identity": encoder_identity,
        "state_contract": state_contract,
        "seeds": seeds,
    }
    if config.sweep:
        from geno_lewm_jax.sweep.spec import sweep_spec

        identity["sweep"] = sweep_spec(config).to_meta()
    return identity


def check_schema(meta: dict[str, Any], checkpoints: Path, *, remediation: str) -> None:
    """Refuse a checkpoint whose meta schema this version cannot read, saying what changed."""
    schema = meta.get("schema")
    if schema == META_SCHEMA:
        return
    why = _LAYOUT_CHANGES.get(schema, "its meta schema is not this version's")
    raise CheckpointMismatchError(
        f"{checkpoints} holds a checkpoint this version cannot read (schema {schema!r}, expected {META_SCHEMA!r}):"
        f" {why}",
        details={"path": str(checkpoints), "schema": schema, "expected": META_SCHEMA},
        remediation=remediation,
    )


def check_resumable(meta: dict[str, Any], config: cfg.Config, run_dir: Path) -> None:
    """Refuse a checkpoint of another run or config unless ``runtime.allow_config_change``."""
    check_schema(meta, run_dir / "checkpoints", remediation="Use a new --run_dir.")
    saved = cfg.from_dict(meta["config"], validate_ranges=False)
    differing = {k: v for k, v in cfg.diff(saved, config).items() if k not in RESUME_FREE_FIELDS}
    if differing and not config.runtime.allow_config_change:
        listed = ", ".join(f"{k} ({v[0]!r} -> {v[1]!r})" for k, v in sorted(differing.items()))
        raise CheckpointMismatchError(
            f"{run_dir} holds checkpoints of a different run or config; differing fields: {listed}",
            details={"path": str(run_dir), "fields": sorted(differing)},
            remediation="Resume with the original settings, pass --allow_config_change, or use a new --run_dir.",
        )


__all__ = ["META_SCHEMA", "RESUME_FREE_FIELDS", "SKILL_FIELDS", "RunState", "check_resumable", "check_schema", "run_identity"]
