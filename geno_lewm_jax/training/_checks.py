"""Argument checks shared by the training modules (bool is never an int here)."""

from __future__ import annotations

import math
from typing import Any

from geno_lewm_jax.errors import InputError


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(
            f"{name} must be a positive integer, got {value!r}",
            details={"field": name, "value": repr(value), "type": type(value).__name__},
        )
    return value


def non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"{name} must be a non-negative integer, got {value!r}",
            details={"field": name, "value": repr(value), "type": type(value).__name__},
        )
    return value


def finite_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"{name} values must be numeric, got {type(value).__name__}",
            details={"field": name, "value": repr(value), "type": type(value).__name__},
        )
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} values must be finite, got {out!r}", details={"field": name, "value": repr(out)})
    return out


def positive_float(name: str, value: Any) -> float:
    out = finite_float(name, value)
    if out <= 0:
        raise InputError(f"{name} must be positive, got {out!r}", details={"field": name, "value": out})
    return out


def non_negative_float(name: str, value: Any) -> float:
    out = finite_float(name, value)
    if out < 0:
        raise InputError(f"{name} must be non-negative, got {out!r}", details={"field": name, "value": out})
    return out
