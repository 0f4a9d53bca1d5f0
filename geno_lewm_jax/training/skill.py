"""Skill over the no-change baseline: does the predictor beat "nothing changed"?

A world model's cosine to the edited state says little when the unedited
state is already close to it (an SNV moves a pooled window state only a
little). These metrics score the predictor against the copy-the-source
baseline, which predicts the unedited window's state ``source`` for every
step of a rollout:

* ``delta_r2 = 1 - sum ||pred - target||^2 / sum ||source - target||^2`` over
  the valid (row, step) pairs: 0 is the baseline, 1 a perfect prediction,
  negative worse than predicting no change;
* ``cos_skill = mean cos(pred, target) - mean cos(source, target)`` over the
  same pairs.

Per rollout step k (``*_k``, [K]) the sums run over the rows with a valid step
k; the baseline stays the source for every k, so ``delta_r2_k`` scores the
cumulative effect of edits 1..k (whether skill decays along the rollout).
A step with no valid pair (or whose targets all equal their source) is NaN.

Pure and jit-traceable; the trainer computes it inside its jitted eval step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.objective import cosine_similarity


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["delta_r2", "cos_skill", "delta_r2_k", "cos_skill_k", "pairs_k"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class SkillMetrics:
    """Skill of one evaluation: scalars over all valid pairs and [K] arrays per rollout step."""

    delta_r2: Any
    cos_skill: Any
    delta_r2_k: Any
    cos_skill_k: Any
    pairs_k: Any

    def to_dict(self, prefix: str = "val_") -> dict[str, Any]:
        """JSON-friendly fields (one host transfer): ``{prefix}delta_r2``, ``{prefix}cos_skill`` and,
        when more than one rollout step holds a valid pair, ``{prefix}delta_r2_k`` /
        ``{prefix}cos_skill_k`` lists up to the last such step, None where a step has none."""
        host = jax.device_get(self)
        out: dict[str, Any] = {f"{prefix}delta_r2": _float(host.delta_r2), f"{prefix}cos_skill": _float(host.cos_skill)}
        steps = int(np.max(np.flatnonzero(np.asarray(host.pairs_k) > 0), initial=-1)) + 1
        if steps > 1:
            out[f"{prefix}delta_r2_k"] = [_float(v) for v in np.asarray(host.delta_r2_k)[:steps]]
            out[f"{prefix}cos_skill_k"] = [_float(v) for v in np.asarray(host.cos_skill_k)[:steps]]
        return out


def _float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _check_shapes(predictions: jax.Array, targets: jax.Array, source: jax.Array, mask: jax.Array) -> None:
    if predictions.ndim != 3:
        raise InputError(f"predictions must be [B, K, S], got {predictions.shape}", details={"field": "predictions"})
    b, k, s = predictions.shape
    expected = {"targets": (targets, (b, k, s)), "source": (source, (b, s)), "mask": (mask, (b, k))}
    for name, (array, shape) in expected.items():
        if tuple(array.shape) != shape:
            raise InputError(
                f"{name} has shape {tuple(array.shape)}, expected {shape}",
                details={"field": name, "shape": list(array.shape), "expected": list(shape)},
            )


def compute_skill_metrics(predictions: Any, targets: Any, source: Any, mask: Any) -> SkillMetrics:
    """Skill of ``predictions`` [B, K, S] for ``targets`` [B, K, S] against copying ``source`` [B, S];
    ``mask`` [B, K] marks the valid (row, step) pairs. Shapes are checked at trace time."""
    predictions, targets = jnp.asarray(predictions, jnp.float32), jnp.asarray(targets, jnp.float32)
    source, mask = jnp.asarray(source, jnp.float32), jnp.asarray(mask)
    _check_shapes(predictions, targets, source, mask)
    weight = mask.astype(jnp.float32)
    copied = jnp.broadcast_to(source[:, None, :], targets.shape)
    error_k = jnp.sum(jnp.sum(jnp.square(predictions - targets), axis=-1) * weight, axis=0)
    baseline_k = jnp.sum(jnp.sum(jnp.square(copied - targets), axis=-1) * weight, axis=0)
    gain_k = jnp.sum((cosine_similarity(predictions, targets) - cosine_similarity(copied, targets)) * weight, axis=0)
    pairs_k = jnp.sum(weight, axis=0)

    def explained(error: jax.Array, baseline: jax.Array) -> jax.Array:
        return jnp.where(baseline > 0, 1.0 - error / jnp.where(baseline > 0, baseline, 1.0), jnp.nan)

    def mean(total: jax.Array, count: jax.Array) -> jax.Array:
        return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)

    return SkillMetrics(
        delta_r2=explained(jnp.sum(error_k), jnp.sum(baseline_k)),
        cos_skill=mean(jnp.sum(gain_k), jnp.sum(pairs_k)),
        delta_r2_k=explained(error_k, baseline_k),
        cos_skill_k=mean(gain_k, pairs_k),
        pairs_k=pairs_k.astype(jnp.int32),
    )


__all__ = ["SkillMetrics", "compute_skill_metrics"]
