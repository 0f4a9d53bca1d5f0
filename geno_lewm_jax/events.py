"""``train.log``: the run's JSONL event log, and what the terminal shows of a run.

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
from typing import Any, Callable, TextIO

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
    """What a person watching the terminal sees: start-up phases, a status line, alerts.

    * :meth:`phase`: one line per start-up phase before the first step
      (``loading Carbon...``), so the time before step 1 is not silent;
    * :meth:`update`: the status line (live on a TTY, one line per call
      otherwise) with the step, losses, throughput, the latest skill over the
      no-change baseline (:meth:`note_skill`) and an ETA from the step rate
      since the first update (which leaves the compile out);
    * :meth:`alert`: one line that stays on screen (a collapse alert).
    """

    def __init__(
        self,
        total_steps: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.skill: float | None = None
        self._clock = clock
        self._last_len = 0
        self._rate_origin: tuple[int, float] | None = None

    def phase(self, text: str) -> None:
        """A start-up phase line: ``text...``."""
        self._line(f"{text}...")

    def alert(self, text: str) -> None:
        """One line that stays above the status line."""
        self._line(f"ALERT {text}")

    def note_skill(self, delta_r2: float | None) -> None:
        """The latest validation's ``val_delta_r2``, shown on the status line from now on."""
        self.skill = delta_r2

    def eta_seconds(self, step: int) -> float | None:
        """Seconds left at the step rate since the first update (None until two updates apart)."""
        now = self._clock()
        if self._rate_origin is None:
            self._rate_origin = (step, now)
            return None
        first_step, first_time = self._rate_origin
        if step <= first_step or now <= first_time:
            return None
        return (self.total - step) * (now - first_time) / (step - first_step)

    def update(self, step: int, fields: dict[str, Any], *, force_line: bool = False) -> None:
        if not self.enabled:
            return
        parts = [f"step {step}/{self.total}"]
        for key in ("loss", "pred_loss", "lr", "grad_norm", "tuples_per_s"):
            value = fields.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{key} {value:.4g}")
        if self.skill is not None:
            parts.append(f"val_delta_r2 {self.skill:.3f}")
        eta = self.eta_seconds(step)
        if eta is not None:
            parts.append(f"eta {_clock_time(eta)}")
        text = "  ".join(parts)
        if self.tty and not force_line:
            pad = max(0, self._last_len - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._last_len = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _line(self, text: str) -> None:
        """A whole line; on a TTY it replaces the live status line, which the next update redraws."""
        if not self.enabled:
            return
        if self.tty and self._last_len:
            text = "\r" + text + " " * max(0, self._last_len - len(text))
            self._last_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0


def _clock_time(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour)."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
