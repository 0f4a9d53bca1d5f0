"""TensorBoard event files under ``<run_dir>/tb/``, written with tensorboardX.

tensorboardX is imported only when a sink is created, so importing
``geno_lewm_jax`` never loads it. (tensorboardX imports torch when torch is
installed; the training job already holds torch for Carbon, so this costs the
job nothing, and nothing on the JAX side imports this module eagerly.)

Resuming: a writer opened at step ``s`` records a restart at ``s`` (a
``SessionLog.START`` event, what tensorboardX's ``purge_step`` writes); the
Python event reader (``--load_fast=false``, EventAccumulator) then hides every
point an earlier process wrote at step ``s`` or later. TensorBoard's default
fast reader ignores that record but drops a curve's later points when the curve
steps back, and a resumed run re-emits each curve on the same schedule; both
readers thus show one point per step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from geno_lewm_jax.errors import RuntimeSetupError

TB_DIR = "tb"


def import_tensorboardx() -> Any:
    """The ``tensorboardX`` module, or one typed error line naming the setting that asked for it."""
    try:
        import tensorboardX
    except ImportError:
        raise RuntimeSetupError(
            "observability.tensorboard is on but the tensorboardX package is not installed",
            details={"field": "observability.tensorboard", "package": "tensorboardX"},
            remediation="pip install 'geno-lewm-jax[tensorboard]' (or tensorboardX), or pass --notensorboard.",
        ) from None
    return tensorboardX


class TensorBoardSink:
    """Scalars of one run directory, one event file per process start.

    Events are written and flushed in the calling thread (tensorboardX's
    ``EventsWriter``, without ``SummaryWriter``'s background queue): a point is
    in the file when ``write`` returns, so a killed run loses nothing it
    reported, and TensorBoard shows each point as it comes.
    """

    def __init__(self, logdir: str | Path, *, purge_step: int) -> None:
        import_tensorboardx()
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.proto.summary_pb2 import Summary

        self._event, self._summary = Event, Summary
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        # The nanosecond suffix keeps two starts within one second in two files, read in start order
        # (file names otherwise differ only by the whole second, and the second would overwrite the first).
        self._file = EventsWriter(str(self.logdir / "events"), filename_suffix=f".{time.time_ns()}")
        self._file.write_event(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        self._file.flush()

    def write(self, step: int, values: dict[str, float]) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])
        self._file.write_event(self._event(wall_time=time.time(), step=step, summary=summary))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


__all__ = ["TB_DIR", "TensorBoardSink", "import_tensorboardx"]
