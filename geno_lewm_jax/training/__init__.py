"""Training: the preflight gate (and, from the training-core engineer, the loop)."""

# Preflight exports (added by the preflight engineer; merge the training-core names alongside).
from geno_lewm_jax.training.preflight import (
    MIN_CUDA_VRAM_GB,
    REPORT_NAME,
    REQUIRED_TRAINING_MODULES,
    SCHEMA_VERSION,
    AcceleratorProbe,
    DependencyProbe,
    TrainingPreflightIssue,
    TrainingPreflightReport,
    TrainingPreflightRequest,
    build_training_preflight_report,
    run_training_preflight,
    write_training_preflight_report,
)

__all__ = [
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
]
