"""One metrics path: each event the loop emits reaches every place a run's numbers are read.

``MetricsFanout.emit(event, step=..., **fields)`` writes the ``train.log``
record, adds the event's fields to the history list it is routed to (the lists
a checkpoint, ``metrics.json`` and the plot are made from), and sends its curves
(see :mod:`geno_lewm_jax.sinks.scalars`) to every scalar sink (TensorBoard,
W&B). It has ``EventLog``'s ``emit`` signature, so it is also the collapse
monitor's logger. A new metric is a new field in an emitted event; nothing else
changes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from geno_lewm_jax.events import EventLog
from geno_lewm_jax.sinks.scalars import STEP, curve_values, is_scalar, section_for


class ScalarSink(Protocol):
    """A destination for curves: ``write`` hands over one step's ``{tag: value}`` for good (no buffering
    a killed run would lose)."""

    def write(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class MetricsFanout:
    """Feeds ``train.log``, the history lists and the scalar sinks from one ``emit`` call per event."""

    def __init__(
        self,
        log: EventLog,
        sinks: Sequence[ScalarSink] = (),
        *,
        history: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """``history`` routes events to lists, appended in place (a resumed run passes the rows it restored).

        Events routed to one list at the same step make one row: the collapse
        metrics and the losses of one validation are one ``collapse_history`` row.
        """
        self.log = log
        self.sinks = tuple(sinks)
        self._history = dict(history or {})
        self._last_step = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether this process writes the run directory's logs (process 0)."""
        return self.log.enabled

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.log.emit(event, **fields)
            step = fields.get(STEP)
            if is_scalar(step):
                self._last_step = int(step)
            self._keep(event, fields)
            section = section_for(event)
            values = curve_values(section, fields) if section is not None else {}
            if values:
                for sink in self.sinks:
                    sink.write(self._last_step, values)

    def _keep(self, event: str, fields: dict[str, Any]) -> None:
        rows = self._history.get(event)
        if rows is None:
            return
        if rows and STEP in fields and rows[-1].get(STEP) == fields[STEP]:
            rows[-1].update(fields)
        else:
            rows.append(dict(fields))

    def history(self, event: str) -> list[dict[str, Any]]:
        """A copy of the rows ``event`` is routed to, oldest first ([] when it is not routed)."""
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
