"""A small in-process metrics registry: named gauges and counters.

Producers (the collapse monitor, the trainer) set values here; exporters and
the main job read :meth:`MetricsRegistry.snapshot`. Names follow geno-lewm
0.2.1 (``geno_lewm.training.collapse.<metric>``...). Thread-safe, because the
main job's background producer and its training loop may both record.
"""

from __future__ import annotations

import math
import threading
from typing import Literal

from geno_lewm_jax.errors import InputError

Kind = Literal["gauge", "counter"]


class Gauge:
    """The latest value of a quantity (NaN allowed: it records what was observed)."""

    kind: Kind = "gauge"

    def __init__(self, name: str, lock: threading.Lock) -> None:
        self.name = name
        self._lock = lock
        self._value = 0.0

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)

    @property
    def value(self) -> float:
        return self._value


class Counter:
    """A monotonically increasing count."""

    kind: Kind = "counter"

    def __init__(self, name: str, lock: threading.Lock) -> None:
        self.name = name
        self._lock = lock
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if not math.isfinite(amount) or amount < 0:
            raise InputError(f"counter {self.name} takes finite non-negative increments, got {amount!r}")
        with self._lock:
            self._value += float(amount)

    @property
    def value(self) -> float:
        return self._value


class MetricsRegistry:
    """Get-or-create access to named metrics; a name keeps the kind it was created with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Gauge | Counter] = {}

    def _get(self, name: str, cls: type[Gauge] | type[Counter]) -> Gauge | Counter:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = cls(name, threading.Lock())
        if not isinstance(metric, cls):
            raise InputError(
                f"metric {name!r} is a {metric.kind}, not a {cls.kind}",
                details={"field": "name", "name": name, "kind": metric.kind},
            )
        return metric

    def gauge(self, name: str) -> Gauge:
        return self._get(name, Gauge)  # type: ignore[return-value]

    def counter(self, name: str) -> Counter:
        return self._get(name, Counter)  # type: ignore[return-value]

    def snapshot(self) -> dict[str, float]:
        """Name -> current value, sorted by name."""
        with self._lock:
            return {name: self._metrics[name].value for name in sorted(self._metrics)}

    def reset(self) -> None:
        with self._lock:
            self._metrics.clear()


REGISTRY = MetricsRegistry()
"""The process-wide default registry."""

__all__ = ["REGISTRY", "Counter", "Gauge", "MetricsRegistry"]
