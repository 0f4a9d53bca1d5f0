"""Training: the training core (objective, schedules, optimizer, trainer, collapse monitor,
samplers, fixture trainer), the preflight gate and the Carbon-backed main job.

Every public name of geno-lewm 0.2.1's ``geno_lewm.training`` is importable
from here. The torch-specific ones are JAX-native, under their own names
(``Trainer``, ``TrainerBatch``, ``TrainerStepResult``, ``DeterminismReport``,
``configure_reproducibility``; ``build_adamw_optimizer`` returns an optax
transformation; the Orbax checkpoint directory ``CARBON_CHECKPOINT_DIR``
stands for the reference's ``CARBON_CHECKPOINT_NAME`` file).

Names resolve on first use (a module ``__getattr__``), so importing this
package imports neither JAX nor torch; a name loads only its own module, and
only the Carbon names (``run_carbon_training``, ``encode_training_batch``)
reach the main job's loop, which itself still loads torch only when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_EXPORTS: dict[str, tuple[str, ...]] = {
    "geno_lewm_jax.data.sampling": (
        "DEFAULT_EDIT_TYPE_WEIGHTS",
        "DEFAULT_ROLLOUT_STEP_MIX",
        "EditTypeWeight",
        "RolloutStepWeight",
        "draw_edit_type_counts",
        "draw_rollout_step_counts",
        "sample_edit_type",
        "sample_rollout_steps",
    ),
    "geno_lewm_jax.objective": (
        "ObjectiveSettings",
        "PredictionLossResult",
        "lejepa_kl_regularizer",
        "prediction_loss",
        "predictor_loss",
        "sigreg_directions",
        "sigreg_regularizer",
    ),
    "geno_lewm_jax.training.collapse": (
        "CollapseAlert",
        "CollapseCheck",
        "CollapseMetrics",
        "CollapseMonitor",
        "CollapseThresholds",
        "compute_collapse_metrics",
        "detect_collapse",
        "kl_reg_is_informative",
        "record_collapse_metrics",
    ),
    "geno_lewm_jax.training.fixture": (
        "FIXTURE_CHECKPOINT_NAME",
        "FIXTURE_DATASET_MANIFEST_NAME",
        "FIXTURE_LOG_NAME",
        "FIXTURE_METRICS_NAME",
        "FIXTURE_TRAINING_METADATA_NAME",
        "FixtureTrainingReport",
        "run_fixture_training",
    ),
    "geno_lewm_jax.training.optimizer": (
        "build_adamw_optimizer",
        "optimizer_grad_norm",
        "optimizer_lr",
        "set_optimizer_lr",
        "weight_decay_mask",
    ),
    "geno_lewm_jax.training.preflight": (
        "MIN_CUDA_VRAM_GB",
        "REPORT_NAME",
        "REQUIRED_TRAINING_MODULES",
        "SCHEMA_VERSION",
        "AcceleratorProbe",
        "DependencyProbe",
        "TrainingPreflightIssue",
        "TrainingPreflightReport",
        "TrainingPreflightRequest",
        "build_training_preflight_report",
        "run_training_preflight",
        "write_training_preflight_report",
    ),
    "geno_lewm_jax.training.reproducibility": ("DeterminismReport", "configure_reproducibility"),
    "geno_lewm_jax.training.schedule": ("wsd_lr_multiplier", "wsd_schedule"),
    "geno_lewm_jax.training.skill": ("SkillMetrics", "compute_skill_metrics"),
    "geno_lewm_jax.training.trainer": (
        "EvalOutput",
        "Trainer",
        "TrainerBatch",
        "TrainerSeeds",
        "TrainerStepResult",
        "make_action_mask",
        "trainable_params",
    ),
    "geno_lewm_jax.training.carbon": ("CarbonTrainingReport", "run_carbon_training"),
    "geno_lewm_jax.training.carbon_batches": ("encode_training_batch",),
}

# The reference's run-directory names, taken from where this project defines them.
_ALIASES: dict[str, tuple[str, str]] = {
    "CARBON_CHECKPOINT_DIR": ("geno_lewm_jax.training.run_summary", "CHECKPOINT_DIR"),
    "CARBON_LOG_NAME": ("geno_lewm_jax.events", "LOG_NAME"),
    "CARBON_METRICS_NAME": ("geno_lewm_jax.training.run_summary", "METRICS_NAME"),
    "CARBON_TRAINING_METADATA_NAME": ("geno_lewm_jax.training.run_summary", "RUN_NAME"),
}

_WHERE: dict[str, tuple[str, str]] = {
    **{name: (module, name) for module, names in _MODULE_EXPORTS.items() for name in names},
    **_ALIASES,
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use and keep the value here."""
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
