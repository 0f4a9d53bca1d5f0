"""Where a training loop's wall time goes: named phases, summed between two reports.

The loop wraps each part of an iteration in ``timeline.phase(name)``; every
``train.progress`` event then carries ``time_<phase>`` seconds since the last
event, plus ``time_wall`` (the whole interval) and ``time_other`` (what no
phase covered: the loop's own bookkeeping). A producer thread keeps its own
timeline; its split (tokenise, Carbon forward, pool, hand-off) rides along
under ``producer_`` names. Names are fixed up front so every event carries the
same keys, a zero where a phase did not occur.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator

LOOP_PHASES = ("producer_wait", "dispatch", "device_wait", "validation", "checkpoint", "logging")
"""The main loop's phases: waiting for the Carbon producer, dispatching the jitted step (and any
compile it triggers), waiting for the device when scalars are fetched, validation, checkpointing
and logging."""

PRODUCER_PHASES = ("encode", "tokenize", "carbon_forward", "pool", "prepare", "handoff")
"""The producer thread's phases: the whole encode (its tokenise / Carbon forward / pool split when
the encoder reports one), placing the batch on the devices, and waiting to hand it over."""


class Timeline:
    """Thread-safe accumulator of seconds per phase since the last :meth:`take`."""

    def __init__(self, phases: Iterable[str]) -> None:
        self.phases = tuple(phases)
        self._lock = threading.Lock()
        self._seconds = dict.fromkeys(self.phases, 0.0)
        self._since = time.monotonic()

    def add(self, name: str, seconds: float) -> None:
        if name not in self._seconds:
            raise KeyError(f"unknown phase {name!r}; known: {', '.join(self.phases)}")
        with self._lock:
            self._seconds[name] += seconds

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)

    def take(self, prefix: str = "time_", *, with_wall: bool = True) -> dict[str, float]:
        """Seconds per phase since the last take (then reset); with ``time_wall`` and ``time_other``."""
        now = time.monotonic()
        with self._lock:
            seconds, self._seconds = self._seconds, dict.fromkeys(self.phases, 0.0)
            wall, self._since = now - self._since, now
        out = {f"{prefix}{name}": value for name, value in seconds.items()}
        if with_wall:
            out[f"{prefix}wall"] = wall
            out[f"{prefix}other"] = max(0.0, wall - sum(seconds.values()))
        return out

    def reset(self) -> None:
        self.take()


__all__ = ["LOOP_PHASES", "PRODUCER_PHASES", "Timeline"]
