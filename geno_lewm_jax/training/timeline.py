"""Where a training loop's wall time goes: named phases, summed between two reports.

The loop wraps each part of an iteration in ``timeline.phase(name)``; every
``train.progress`` event then carries ``time_<phase>`` seconds since the last
event and ``time_wall``, the whole interval. The loop's timeline is
contiguous: every instant of the interval belongs to exactly one phase, the
time outside all of them to ``host`` (the loop's own bookkeeping), so the
phases add up to ``time_wall``. A producer thread keeps a plain tally of its
own (tokenise, Carbon forward, pool, hand-off), reported under ``producer_``
names. Names are fixed up front so every event carries the same keys, a zero
where a phase did not occur.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator

LOOP_PHASES = ("producer_wait", "dispatch", "device_wait", "validation", "checkpoint", "logging", "host")
"""The main loop's phases: waiting for the Carbon producer, dispatching the jitted step (and any
compile it triggers), waiting for the device when scalars are fetched, validation, checkpointing,
logging, and the loop's own host work in between."""

PRODUCER_PHASES = ("encode", "tokenize", "carbon_forward", "pool", "prepare", "handoff")
"""The producer thread's phases: the whole encode (its tokenise / Carbon forward / pool split when
the encoder reports one), placing the batch on the devices, and waiting to hand it over. They
overlap (encode holds the next three), so they are a tally, not a partition of its time."""


class PhaseTally:
    """Thread-safe seconds per phase since the last :meth:`take`; phases may overlap."""

    def __init__(self, phases: Iterable[str]) -> None:
        self.phases = tuple(phases)
        self._lock = threading.Lock()
        self._seconds = dict.fromkeys(self.phases, 0.0)

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

    def take(self, prefix: str) -> dict[str, float]:
        """Seconds per phase since the last take (then reset), keys prefixed."""
        with self._lock:
            seconds, self._seconds = self._seconds, dict.fromkeys(self.phases, 0.0)
        return {f"{prefix}{name}": value for name, value in seconds.items()}


class LoopTimeline:
    """One thread's wall time cut into phases with no gap: outside every phase it is ``host``."""

    IDLE = "host"

    def __init__(self, phases: Iterable[str] = LOOP_PHASES) -> None:
        self.phases = tuple(phases)
        if self.IDLE not in self.phases:
            raise ValueError(f"a loop timeline needs the {self.IDLE!r} phase")
        self._seconds = dict.fromkeys(self.phases, 0.0)
        self._active = [self.IDLE]
        self._since = self._mark = time.monotonic()

    def _switch(self, now: float) -> None:
        self._seconds[self._active[-1]] += now - self._mark
        self._mark = now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in self._seconds:
            raise KeyError(f"unknown phase {name!r}; known: {', '.join(self.phases)}")
        self._switch(time.monotonic())
        self._active.append(name)
        try:
            yield
        finally:
            self._switch(time.monotonic())
            self._active.pop()

    def take(self) -> dict[str, float]:
        """``time_<phase>`` seconds since the last take (then reset) and ``time_wall``, their sum."""
        now = time.monotonic()
        self._switch(now)
        seconds, self._seconds = self._seconds, dict.fromkeys(self.phases, 0.0)
        wall, self._since = now - self._since, now
        return {**{f"time_{name}": value for name, value in seconds.items()}, "time_wall": wall}


__all__ = ["LOOP_PHASES", "PRODUCER_PHASES", "LoopTimeline", "PhaseTally"]
