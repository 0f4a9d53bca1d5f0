"""Edit-type and rollout-length samplers (RFC-0005 edit balance and K-mix).

The K-step stream draws K and the types of its follow-up edits here. Draws
consume exactly one ``random.Random.random()`` each and walk the weights in
order, so a given ``random.Random`` seed yields the same sequence as
geno-lewm 0.2.1; the training package re-exports these names.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import TypeVar

from geno_lewm_jax.data.actions import EditType
from geno_lewm_jax.errors import InputError


def _check_weight(value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise InputError(
            f"weight must be a positive finite number, got {value!r}",
            details={"field": "weight", "value": value, "type": type(value).__name__},
            remediation="drop an entry instead of giving it weight 0",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class EditTypeWeight:
    """Relative frequency of one edit type."""

    edit_type: EditType
    weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.edit_type, EditType):
            try:
                object.__setattr__(self, "edit_type", EditType(int(self.edit_type)))
            except (TypeError, ValueError):
                raise InputError(
                    f"edit_type must be a supported EditType, got {self.edit_type!r}", details={"edit_type": self.edit_type}
                ) from None
        _check_weight(self.weight)


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutStepWeight:
    """Relative frequency of one rollout length K."""

    steps: int
    weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise InputError(
                f"steps must be a positive integer, got {self.steps!r}",
                details={"steps": self.steps, "type": type(self.steps).__name__},
            )
        _check_weight(self.weight)


DEFAULT_EDIT_TYPE_WEIGHTS: tuple[EditTypeWeight, ...] = (
    EditTypeWeight(EditType.SNV, 0.40),
    EditTypeWeight(EditType.INS, 0.20),
    EditTypeWeight(EditType.DEL, 0.20),
    EditTypeWeight(EditType.MNV, 0.10),
    EditTypeWeight(EditType.INDEL, 0.10),
)

DEFAULT_ROLLOUT_STEP_MIX: tuple[RolloutStepWeight, ...] = (
    RolloutStepWeight(1, 0.90),
    RolloutStepWeight(2, 0.05),
    RolloutStepWeight(3, 0.05),
)

_W = TypeVar("_W", EditTypeWeight, RolloutStepWeight)


def pick_weighted(rng: random.Random, entries: Sequence[_W]) -> _W:
    """One weighted draw over already-validated entries: a single uniform scaled by the
    total, then the first entry whose running weight exceeds it (hot-path form)."""
    threshold = rng.random() * sum(e.weight for e in entries)
    running = 0.0
    for entry in entries:
        running += entry.weight
        if threshold < running:
            return entry
    return entries[-1]


def check_edit_type_weights(weights: Sequence[EditTypeWeight]) -> tuple[EditTypeWeight, ...]:
    if not weights:
        raise InputError("edit type weights must contain at least one entry", details={"field": "weights"})
    out: list[EditTypeWeight] = []
    for entry in weights:
        entry = EditTypeWeight(entry.edit_type, entry.weight)
        if entry.edit_type is EditType.SV:
            raise InputError(
                "SV edits are outside the edit-balanced sampler: structural variants cannot be sampled",
                details={"edit_type": int(entry.edit_type)},
            )
        if any(seen.edit_type is entry.edit_type for seen in out):
            raise InputError(
                f"edit type weights contain duplicate edit types: {entry.edit_type.name} appears twice",
                details={"edit_type": int(entry.edit_type)},
            )
        out.append(entry)
    return tuple(out)


def check_rollout_mix(mix: Sequence[RolloutStepWeight]) -> tuple[RolloutStepWeight, ...]:
    if not mix:
        raise InputError("rollout step mix must contain at least one entry", details={"field": "mix"})
    out: list[RolloutStepWeight] = []
    for entry in mix:
        entry = RolloutStepWeight(entry.steps, entry.weight)
        if any(seen.steps == entry.steps for seen in out):
            raise InputError(
                f"rollout step mix contains duplicate step counts: K={entry.steps} appears twice",
                details={"steps": entry.steps},
            )
        out.append(entry)
    return tuple(out)


def _check_count(n: object) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InputError(
            f"n must be a non-negative integer, got {n!r}",
            details={"field": "n", "value": n, "type": type(n).__name__},
        )


def sample_edit_type(rng: random.Random, *, weights: Sequence[EditTypeWeight] = DEFAULT_EDIT_TYPE_WEIGHTS) -> EditType:
    """One edit type from ``weights`` (one RNG draw)."""
    return pick_weighted(rng, check_edit_type_weights(weights)).edit_type


def sample_rollout_steps(rng: random.Random, *, mix: Sequence[RolloutStepWeight] = DEFAULT_ROLLOUT_STEP_MIX) -> int:
    """One rollout length K from ``mix`` (one RNG draw)."""
    return pick_weighted(rng, check_rollout_mix(mix)).steps


def draw_edit_type_counts(
    n: int, *, rng: random.Random, weights: Sequence[EditTypeWeight] = DEFAULT_EDIT_TYPE_WEIGHTS
) -> dict[EditType, int]:
    """Histogram of ``n`` sequential draws, keyed in entry order (zeros kept)."""
    _check_count(n)
    entries = check_edit_type_weights(weights)
    counts = {e.edit_type: 0 for e in entries}
    for _ in range(n):
        counts[pick_weighted(rng, entries).edit_type] += 1
    return counts


def draw_rollout_step_counts(
    n: int, *, rng: random.Random, mix: Sequence[RolloutStepWeight] = DEFAULT_ROLLOUT_STEP_MIX
) -> dict[int, int]:
    """Histogram of ``n`` sequential K draws, keyed in entry order (zeros kept)."""
    _check_count(n)
    entries = check_rollout_mix(mix)
    counts = {e.steps: 0 for e in entries}
    for _ in range(n):
        counts[pick_weighted(rng, entries).steps] += 1
    return counts


def max_rollout_steps(mix: Sequence[RolloutStepWeight]) -> int:
    """Largest K a mix can produce (sizes the padded K buckets)."""
    return max(e.steps for e in check_rollout_mix(mix))


__all__ = [
    "DEFAULT_EDIT_TYPE_WEIGHTS",
    "DEFAULT_ROLLOUT_STEP_MIX",
    "EditTypeWeight",
    "RolloutStepWeight",
    "check_edit_type_weights",
    "check_rollout_mix",
    "draw_edit_type_counts",
    "draw_rollout_step_counts",
    "max_rollout_steps",
    "pick_weighted",
    "sample_edit_type",
    "sample_rollout_steps",
]
