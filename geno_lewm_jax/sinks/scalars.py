"""Which event fields are curves, and what they are called in TensorBoard and W&B.

A curve is a finite real number (bools, strings, None and non-finite values are
not: ``train.log`` writes the last as null). Its name is ``<section>/<field>``,
the field keeping its ``train.log`` name, so ``train/loss`` in TensorBoard is
``loss`` in a ``train.progress`` record; the phase timeline's fields
(``time_*``, ``producer_*``) form their own ``time/`` section, so the loss
curves are not lost among them. ``step`` is the x axis, not a curve,
except in an event that carries no other number (``checkpoint/step`` marks when
a checkpoint was saved). An event the loop emits for the first time becomes a
curve section named by the last part of its name, so a new metric needs no
change here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

STEP = "step"

# Sections whose name differs from the last part of the event name.
SECTIONS: dict[str, str] = {
    "train.progress": "train",
    "train.validation": "val",
    "training.collapse.metrics": "collapse",
}

# Field-name prefixes that put a field in its own section whatever the event.
FIELD_SECTIONS: dict[str, str] = {"time_": "time", "producer_": "time"}

# Events that describe the run rather than measure it: kept in train.log only.
NOT_CURVES: frozenset[str] = frozenset(
    {
        "train.start",
        "train.resume",
        "train.end",
        "train.signal",
        "train.checkpoint_corrupt",
        "training.collapse.alert",
    }
)


def section_for(event: str) -> str | None:
    """The tag prefix of ``event``'s curves, or None for an event that is not a measurement."""
    if event in NOT_CURVES:
        return None
    return SECTIONS.get(event, event.rsplit(".", 1)[-1])


def is_scalar(value: Any) -> bool:
    """A finite real number that is not a bool (numpy scalars included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value))


def tag_for(section: str, field: str) -> str:
    """``<section>/<field>``, or the field's own section for a timeline field."""
    for prefix, own in FIELD_SECTIONS.items():
        if field.startswith(prefix):
            return f"{own}/{field}"
    return f"{section}/{field}"


def curve_values(section: str, fields: Mapping[str, Any]) -> dict[str, float]:
    """``{tag: value}`` for every curve in ``fields``."""
    values = {tag_for(section, k): float(v) for k, v in fields.items() if k != STEP and is_scalar(v)}
    if not values and is_scalar(fields.get(STEP)):
        values[f"{section}/{STEP}"] = float(fields[STEP])
    return values


__all__ = ["FIELD_SECTIONS", "NOT_CURVES", "SECTIONS", "STEP", "curve_values", "is_scalar", "section_for", "tag_for"]
