"""One metrics path: each event the loop emits reaches every place a run's numbers are read.

``MetricsFanout.emit(event, step=..., **fields)`` writes the ``train.log``
record, keeps the event's fields in the in-memory history that ``metrics.json``
and the plot are built from, and sends its curves (see
:mod:`geno_lewm_jax.sinks.scalars`) to every scalar sink (TensorBoard, W&B).
It has ``EventLog``'s ``emit`` signature, so it is also the collapse monitor's
logger. A new metric is a new field in an emitted event; nothing else changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from geno_lewm_jax.events import EventLog
from geno_lewm_jax.sinks.scalars import STEP, curve_values, is_scalar, section_for

class ScalarSink(Protocol):
    """A destination for curves: ``write`` hands over one step's ``{tag: value}`` for good (no buffering
    a killed run would lose)."""

    def write(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class MetricsFanout:
    """Feeds ``train.log``, the history and the scalar sinks from one ``emit`` call per event."""

    def __init__(
        self,
        log: EventLog,
        sinks: Sequence[ScalarSink] = (),
        *,
        history: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
    ) -> None:
        """``history`` seeds the rows a resumed run already has (from its checkpoint), per event name."""
        self.log = log
        self.sinks = tuple(sinks)
        self._history: dict[str, list[dict[str, Any]]] = {k: [dict(r) for r in v] for k, v in (history or {}).items()}
        self._last_step = 0
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.log.emit(event, **fields)
            step = fields.get(STEP)
            if is_scalar(step):
                self._last_step = int(step)
            section = section_for(event)
            if section is None:
                return
            self._history.setdefault(event, []).append(dict(fields))
            values = curve_values(section, fields)
            if values:
                for sink in self.sinks:
                    sink.write(self._last_step, values)

    def history(self, event: str) -> list[dict[str, Any]]:
        """The fields of every ``event`` emitted so far (seeded rows first), oldest first."""
        with self._lock:
            return [dict(r) for r in self._history.get(event, ())]

    def close(self) -> None:
        """Close every sink and the log, each even if an earlier one fails; then raise the first failure."""
        failures: list[Exception] = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - one broken sink must not keep the others open
                failures.append(exc)
        self.log.close()
        if failures:
            raise failures[0]


__all__ = ["MetricsFanout", "ScalarSink"]
