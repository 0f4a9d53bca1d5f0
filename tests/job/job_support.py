"""Helpers for the main-job tests: small-run flags, subprocess launch, file digests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

# A small predictor so each subprocess run stays within seconds on 2 cores.
SMALL = (
    "--flagfile=configs/tiny.flags",
    "--d_hidden=64",
    "--ffn_dim=64",
    "--n_heads=2",
    "--n_layers=2",
    "--n_self_layers=1",
    "--batch_size=8",
    "--max_steps=12",
    "--warmup_steps=2",
    "--log_every_steps=1",
    "--checkpoint_every_steps=2",
    "--collapse_log_every_steps=4",
    "--validation_batches=1",
    "--nobootstrap_missing",
)


def job_args(inputs: dict[str, Path], run_dir: Path, *extra: str) -> list[str]:
    return [*SMALL, f"--model_dir={inputs['model_dir']}", f"--dataset_dir={inputs['dataset_dir']}", f"--run_dir={run_dir}", *extra]


def main_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "geno_lewm_jax.main", *args]


def job_env() -> dict[str, str]:
    """A job process's environment: one CPU device (the test session forces 8), unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_main(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(main_command(args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=job_env())


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def final_state(run_dir: Path) -> tuple[int, dict[str, np.ndarray]]:
    """The newest checkpoint's step and its trained parameters by path, restored onto this process's devices.

    Goes through the project's own restore path (a target built from a fresh Trainer), so a
    checkpoint written by several processes reads back on one.
    """
    import jax
    from flax import nnx

    from geno_lewm_jax.checkpointing import CheckpointStore
    from geno_lewm_jax.export import load_run_modules

    store = CheckpointStore(run_dir / "checkpoints", async_save=False)
    try:
        step = store.latest_step()
    finally:
        store.close()
    _, predictor, action_encoder = load_run_modules(run_dir)
    params = {"predictor": nnx.state(predictor, nnx.Param), "action_encoder": nnx.state(action_encoder, nnx.Param)}
    return step, {jax.tree_util.keystr(path): np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(params)}
