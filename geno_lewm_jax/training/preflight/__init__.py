"""The training preflight: can this config train on this snapshot, Carbon dir and machine?

``gate`` builds, writes and enforces the report (see its docstring for what
differs from geno-lewm 0.2.1); ``report`` holds the report's value types and
the helpers the probes share; ``dataset``, ``carbon``, ``config`` and
``runtime`` are the probes, ``memory`` the batch-memory estimate. The public names stay importable from here, where
the main job and the seed's users import them.
"""

from geno_lewm_jax.training.preflight import gate
from geno_lewm_jax.training.preflight.gate import (
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
    save_report,
    write_training_preflight_report,
)

__all__ = list(gate.__all__)
