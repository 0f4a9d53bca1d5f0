"""Seeds and determinism settings applied once at the start of a run.

JAX randomness is explicit (keys derived from the seeds), so what remains
global is Python's and NumPy's RNG, which host-side code may use, and XLA's
choice of kernels. On GPU, ``--xla_gpu_deterministic_ops=true`` makes every
kernel run-to-run deterministic; XLA reads ``XLA_FLAGS`` when the backend
starts, so call :func:`configure_reproducibility` before the first device use
(the report says whether the flag arrived in time). CPU kernels are already
deterministic for a fixed device count.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np

from geno_lewm_jax.training._checks import non_negative_int

DETERMINISTIC_XLA_FLAG = "--xla_gpu_deterministic_ops=true"


@dataclasses.dataclass(frozen=True, slots=True)
class DeterminismReport:
    """What :func:`configure_reproducibility` did."""

    seed: int
    deterministic: bool
    xla_flags: str | None
    xla_flags_effective: bool | None
    platform: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _backends_started() -> bool | None:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API: report "unknown" rather than guess
        return None


def configure_reproducibility(*, seed: int, deterministic: bool) -> DeterminismReport:
    """Seed Python's and NumPy's global RNGs; with ``deterministic``, request deterministic XLA kernels.

    ``xla_flags_effective`` is False when the backend had already started (the
    flag then applies only to the next process), None when that is unknown.
    """
    non_negative_int("seed", seed)
    if not isinstance(deterministic, bool):
        from geno_lewm_jax.errors import InputError

        raise InputError(f"deterministic must be a bool, got {deterministic!r}", details={"field": "deterministic"})
    random.seed(seed)
    np.random.seed(seed)
    started = _backends_started()
    flags: str | None = None
    effective: bool | None = None
    if deterministic:
        current = os.environ.get("XLA_FLAGS", "")
        if DETERMINISTIC_XLA_FLAG.split("=")[0] not in current:
            os.environ["XLA_FLAGS"] = f"{current} {DETERMINISTIC_XLA_FLAG}".strip()
        flags = os.environ["XLA_FLAGS"]
        effective = None if started is None else not started
    platform = None
    if started:
        import jax

        platform = jax.default_backend()
    return DeterminismReport(
        seed=seed, deterministic=deterministic, xla_flags=flags, xla_flags_effective=effective, platform=platform
    )


__all__ = ["DETERMINISTIC_XLA_FLAG", "DeterminismReport", "configure_reproducibility"]
