"""TensorBoard event files under ``<run_dir>/tb/``, written with tensorboardX.

tensorboardX is imported only when a sink is created, so importing
``geno_lewm_jax`` never loads it. (tensorboardX imports torch when torch is
installed; the training job already holds torch for Carbon, so this costs the
job nothing, and nothing on the JAX side imports this module eagerly.)

Resuming: a writer opened at step ``s`` records a restart at ``s``
(tensorboardX's ``purge_step``), and TensorBoard then hides every event a
killed run wrote at step ``s`` or later, so the resumed run's points replace
them instead of doubling the curve.
"""

from __future__ import annotations

import time
from pathlib import Path

from geno_lewm_jax.errors import RuntimeSetupError

TB_DIR = "tb"


class TensorBoardSink:
    """Scalars of one run directory, one event file per process start."""

    def __init__(self, logdir: str | Path, *, purge_step: int, flush_secs: int = 30) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise RuntimeSetupError(
                "observability.tensorboard is on but the tensorboardX package is not installed",
                details={"field": "observability.tensorboard", "package": "tensorboardX"},
                remediation="pip install 'geno-lewm-jax[tensorboard]' (or tensorboardX), or pass --notensorboard.",
            ) from None
        self.logdir = Path(logdir)
        # The nanosecond suffix keeps two starts within one second in two files, read in start order
        # (tensorboardX names files by whole seconds and would otherwise overwrite the first).
        self._writer = SummaryWriter(
            logdir=str(self.logdir),
            purge_step=purge_step,
            flush_secs=flush_secs,
            filename_suffix=f".{time.time_ns()}",
        )

    def write(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


__all__ = ["TB_DIR", "TensorBoardSink"]
