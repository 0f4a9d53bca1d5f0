"""Shared inputs of the fault-injection suite: the job tests' helpers on the path, one stand-in Carbon
and one synthetic snapshot per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "job"))  # job_support


@pytest.fixture(scope="session")
def fault_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot

    root = tmp_path_factory.mktemp("fault-inputs")
    write_standin(root / "carbon", seed=0)
    make_synthetic_snapshot(root / "snapshot", seed=0, n_windows=48)
    return {"model_dir": root / "carbon", "dataset_dir": root / "snapshot"}

