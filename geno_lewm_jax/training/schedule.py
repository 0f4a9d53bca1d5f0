"""Learning-rate schedules: warmup-stable-decay (WSD), cosine and constant.

:func:`wsd_lr_multiplier` is the host-side rule, in Python floats, for the
1-indexed optimizer step ``s`` (the multiplier applied *before* update ``s``).
With ``P = total - warmup``, ``D0 = warmup + max(1, floor(0.8 P))`` and
``F = warmup + max(1, floor(0.98 P))``, WSD is: ``s / warmup`` during warmup,
1.0 up to ``D0``, a linear fall to 0.1 at ``F``, then a linear taper to 0.01
at ``total``. Cosine ignores warmup and reaches exactly 0 at the last step;
constant is always 1.

:func:`wsd_schedule` is the same rule as an optax schedule of the 0-based
update count (``lr(count) = peak * multiplier(count + 1)``), traceable in jit.
"""

from __future__ import annotations

import math
from typing import Literal

import jax.numpy as jnp
import optax

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.training._checks import non_negative_int, positive_float, positive_int

ScheduleName = Literal["wsd", "cosine", "constant"]
SCHEDULES: tuple[str, ...] = ("wsd", "cosine", "constant")

STABLE_FRACTION = 0.80
DECAY_END_FRACTION = 0.98
DECAY_DROP = 0.9  # 1.0 -> 0.1 over the decay phase
TAPER_START = 0.1
TAPER_DROP = 0.09  # 0.1 -> 0.01 over the final taper
TAPER_FLOOR = 0.01


def _check_schedule(schedule: object) -> None:
    if schedule not in SCHEDULES:
        raise InputError(
            f"unsupported learning-rate schedule {schedule!r}; use one of {', '.join(SCHEDULES)}",
            details={"field": "optimizer.schedule", "schedule": repr(schedule)},
        )


def wsd_boundaries(total_steps: int, warmup_steps: int) -> tuple[int, int]:
    """(last stable step D0, last decay step F) of the WSD rule."""
    post = total_steps - warmup_steps
    return warmup_steps + max(1, int(post * STABLE_FRACTION)), warmup_steps + max(1, int(post * DECAY_END_FRACTION))


def wsd_lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, schedule: ScheduleName = "wsd") -> float:
    """Multiplier of the peak learning rate for 1-indexed ``step`` (1..total_steps)."""
    positive_int("step", step)
    positive_int("total_steps", total_steps)
    non_negative_int("warmup_steps", warmup_steps)
    if step > total_steps:
        raise InputError(
            f"step cannot exceed total_steps ({step} > {total_steps})",
            details={"step": step, "total_steps": total_steps},
        )
    _check_schedule(schedule)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        if total_steps == 1:
            return 1.0
        fraction = (step - 1) / (total_steps - 1)
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
    if 0 < warmup_steps and warmup_steps >= step:
        return step / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    stable_end, decay_end = wsd_boundaries(total_steps, warmup_steps)
    if step <= stable_end:
        return 1.0
    # operation order matters: the multipliers equal the reference's bit for bit
    if step <= decay_end:
        progress = (step - stable_end) / max(1, decay_end - stable_end)
        return 1.0 - DECAY_DROP * progress
    progress = (step - decay_end) / max(1, total_steps - decay_end)
    return max(TAPER_FLOOR, TAPER_START - TAPER_DROP * progress)


def wsd_schedule(
    peak_lr: float, *, total_steps: int, warmup_steps: int, schedule: ScheduleName = "wsd"
) -> optax.Schedule:
    """An optax schedule: ``peak_lr * wsd_lr_multiplier(count + 1)`` in float32.

    Counts past the horizon hold the last step's value (a traced schedule
    cannot raise); the host-side :func:`wsd_lr_multiplier` is the strict one.
    """
    peak = positive_float("peak_lr", peak_lr)
    positive_int("total_steps", total_steps)
    non_negative_int("warmup_steps", warmup_steps)
    _check_schedule(schedule)
    stable_end, decay_end = wsd_boundaries(total_steps, warmup_steps)

    def fn(count: jnp.ndarray) -> jnp.ndarray:
        s = jnp.clip(jnp.asarray(count, jnp.int32) + 1, 1, total_steps).astype(jnp.float32)
        if schedule == "constant":
            m = jnp.ones_like(s)
        elif schedule == "cosine":
            m = jnp.ones_like(s) if total_steps == 1 else 0.5 * (1.0 + jnp.cos(jnp.pi * (s - 1) / (total_steps - 1)))
        elif total_steps <= warmup_steps:
            m = jnp.minimum(s / warmup_steps, 1.0)
        else:
            decay = 1.0 - DECAY_DROP * ((s - stable_end) / max(1, decay_end - stable_end))
            taper = TAPER_START - TAPER_DROP * ((s - decay_end) / max(1, total_steps - decay_end))
            m = jnp.where(s <= stable_end, 1.0, jnp.where(s <= decay_end, decay, jnp.maximum(TAPER_FLOOR, taper)))
            if warmup_steps > 0:
                m = jnp.where(s <= warmup_steps, s / warmup_steps, m)
        return peak * m

    return fn


__all__ = ["SCHEDULES", "ScheduleName", "wsd_boundaries", "wsd_lr_multiplier", "wsd_schedule"]
