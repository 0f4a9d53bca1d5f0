"""``train.log``: the run's JSONL event log, and the live progress display.

Events (one JSON object per line, keys sorted, strict JSON): ``train.start``,
``train.resume``, ``train.progress``, ``training.collapse.metrics``,
``training.collapse.alert``, ``train.checkpoint``, ``train.validation``,
``train.skip_step``, ``train.signal``, ``train.end``. Only process 0 writes.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from geno_lewm_jax.errors import EventLogWriteError
from geno_lewm_jax.run_dir import _strictify

LOG_NAME = "train.log"


def utc_now() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Append-only JSONL writer, flushed per line so a killed run keeps every event it wrote.

    A write that fails (disk full, file system gone read-only) raises EventLogWriteError
    naming the file, once; the log is closed and later events are dropped, so the run's
    own error is what the user sees. A torn last line (a crash mid-write) is ended before
    the next run appends, so every later line parses.
    """

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._handle: TextIO | None = None
        if enabled:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - closed in close()
                self._end_torn_line()
            except OSError as exc:
                self._discard()
                raise self._error(exc) from None

    def _end_torn_line(self) -> None:
        assert self._handle is not None
        size = self._handle.seek(0, 2)
        if size:
            with open(self.path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":
                    self._handle.write("\n")
                    self._handle.flush()

    def emit(self, event: str, **fields: Any) -> None:
        if self._handle is None:
            return
        record = {"event": event, "ts": utc_now(), **_strictify(fields)}
        try:
            self._handle.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
            self._handle.flush()
        except OSError as exc:
            self._discard()
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> EventLogWriteError:
        return EventLogWriteError(
            f"cannot write the event log {self.path}: {exc.strerror or exc}",
            details={"path": str(self.path), "errno": exc.errno},
            remediation="Free space or fix permissions in the run directory, then rerun the same command to resume.",
        )

    def _discard(self) -> None:
        """Drop the handle without flushing again (its buffer is what failed to write)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass

    def close(self) -> None:
        self._discard()


class ProgressDisplay:
    """One live status line on a TTY; plain periodic lines otherwise."""

    def __init__(self, total_steps: int, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_len = 0
        self._started = time.monotonic()

    def update(self, step: int, fields: dict[str, Any], *, force_line: bool = False) -> None:
        if not self.enabled:
            return
        parts = [f"step {step}/{self.total}"]
        for key in ("loss", "pred_loss", "lr", "grad_norm", "tuples_per_s"):
            value = fields.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{key} {value:.4g}")
        text = "  ".join(parts)
        if self.tty and not force_line:
            pad = max(0, self._last_len - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._last_len = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
