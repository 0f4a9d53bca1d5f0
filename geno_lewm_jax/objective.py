"""The training objective: prediction loss, LeJEPA KL regulariser and the phase rule.

Pure, jit-traceable functions of arrays. Shape, dtype and argument checks run
at trace time and raise :class:`~geno_lewm_jax.errors.InputError` naming the
argument; value checks (a 0/1 mask) run only on concrete inputs, so nothing
here breaks ``jit``.

Semantics follow geno-lewm 0.2.1 (``predictor/losses.py``):

* per valid (b, k): ``alpha * (1 - cos) + beta * ||pred - target||^2 / D``,
  where ``cos`` clamps each vector norm below at 1e-8 before dividing (torch's
  ``cosine_similarity``), averaged over valid positions;
* ``KL(N(mu, C) || N(0, I)) = 0.5 (|mu|^2 + tr C - logdet(C + eps I) - D)`` of
  the rows of the regularised states, with negative eigenvalues clamped to 0;
* ``phase1``: loss = prediction loss (the KL is still reported);
  ``phase2``: loss = prediction loss + gamma * KL.

The reference computes the KL in float64 through an eigendecomposition of the
D x D covariance. Here it stays float32 and, with fewer rows than
dimensions, never forms a D x D matrix: with
``xs`` the centred rows scaled by 1/sqrt(M), the covariance is ``xs^T xs``,
whose non-zero eigenvalues are those of the M x M Gram matrix ``xs xs^T``
(the Gram identity) and whose other D - M eigenvalues are exactly zero, each
adding ``log(eps)``. The shared eigenvalues are computed as the squared
singular values of ``xs`` (an SVD of the M x D rows, not an eigensolver on a
product), which keeps the small ones that dominate ``logdet`` accurate in
float32. Rows excluded by ``row_mask`` are zero rows of ``xs``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError

Phase = Literal["phase1", "phase2"]
KLSource = Literal["targets", "predictions"]

COSINE_EPS = 1.0e-8
KL_EPS = 1.0e-6
_HIGHEST = jax.lax.Precision.HIGHEST


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["loss", "pred_loss", "kl_reg"], meta_fields=["phase"]
)
@dataclasses.dataclass(frozen=True)
class PredictionLossResult:
    """Total loss and its reported parts (float32 scalars); a pytree, so it can leave jit."""

    loss: jax.Array
    pred_loss: jax.Array
    kl_reg: jax.Array
    phase: Phase


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """The ablation knobs of the objective, validated once."""

    phase: Phase = "phase1"
    alpha: float = 1.0
    beta: float = 0.1
    gamma: float = 0.5
    kl_source: KLSource = "targets"

    def __post_init__(self) -> None:
        _check_phase(self.phase)
        for name in ("alpha", "beta", "gamma"):
            _check_non_negative(name, getattr(self, name))
        _check_kl_source(self.kl_source)

    @classmethod
    def from_config(cls, config: Any) -> "ObjectiveSettings":
        """Read ``phase`` and ``training.loss_alpha/beta/gamma/kl_source``."""
        t = config.training
        return cls(
            phase=config.phase, alpha=t.loss_alpha, beta=t.loss_beta, gamma=t.loss_gamma, kl_source=t.kl_source
        )


# --- pieces --------------------------------------------------------------------------------------
def _safe_norm(x: jax.Array) -> jax.Array:
    """L2 norm over the last axis whose gradient is 0 (not NaN) at the zero vector."""
    sq = jnp.sum(x * x, axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def cosine_similarity(a: jax.Array, b: jax.Array, *, eps: float = COSINE_EPS) -> jax.Array:
    """Cosine over the last axis, each norm clamped below at ``eps`` (torch semantics)."""
    na = jnp.maximum(_safe_norm(a), eps)[..., None]
    nb = jnp.maximum(_safe_norm(b), eps)[..., None]
    return jnp.sum((a / na) * (b / nb), axis=-1)


def prediction_loss(
    prediction: jax.Array,
    target: jax.Array,
    *,
    alpha: float = 1.0,
    beta: float = 0.1,
    mask: jax.Array | None = None,
    eps: float = COSINE_EPS,
) -> jax.Array:
    """``alpha (1 - cos) + beta * ||pred - target||^2 / D``, mean over valid positions."""
    prediction, target = jnp.asarray(prediction), jnp.asarray(target)
    _check_pair(prediction, target)
    _check_non_negative("alpha", alpha)
    _check_non_negative("beta", beta)
    _check_positive("eps", eps)
    per_step = alpha * (1.0 - cosine_similarity(prediction, target, eps=eps)) + beta * jnp.sum(
        jnp.square(prediction - target), axis=-1
    ) / prediction.shape[-1]
    if mask is None:
        return jnp.mean(per_step)
    valid = _as_mask(mask, prediction.shape[:-1])
    count = jnp.sum(valid, dtype=jnp.float32)
    return jnp.sum(jnp.where(valid, per_step, 0.0)) / count


@jax.custom_vjp
def _sum_log_eigenvalues(x: jax.Array, eps: jax.Array) -> jax.Array:
    """``sum_i log(s_i^2 + eps)`` over the singular values of ``x`` [M, D].

    The s_i^2 are the min(M, D) eigenvalues that ``x^T x`` shares with the
    Gram matrix ``x x^T``. Taking them from the SVD of ``x`` rather than from
    an eigensolver on either product keeps the small ones, which dominate the
    sum, accurate in float32 (error ~ eps * s_i * s_max instead of eps * s_max^2)
    and needs no clamp: they cannot come out negative.
    """
    s = jnp.linalg.svd(x, compute_uv=False)
    return jnp.sum(jnp.log(s * s + eps))


def _sum_log_fwd(x: jax.Array, eps: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    u, s, vt = jnp.linalg.svd(x, full_matrices=False)
    return jnp.sum(jnp.log(s * s + eps)), (u, s, vt, eps)


def _sum_log_bwd(res: tuple[jax.Array, ...], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    # d/dx sum log(s^2 + eps) = U diag(2 s / (s^2 + eps)) V^T: no 1/(s_i - s_j) terms, so repeated
    # singular values (zero or duplicated rows) are fine, unlike the generic SVD derivative.
    u, s, vt, eps = res
    grad = jnp.matmul(u * (g * 2.0 * s / (s * s + eps)), vt, precision=_HIGHEST)
    return grad, jnp.zeros_like(eps)


_sum_log_eigenvalues.defvjp(_sum_log_fwd, _sum_log_bwd)


def lejepa_kl_regularizer(
    states: jax.Array, *, eps: float = KL_EPS, row_mask: jax.Array | None = None
) -> jax.Array:
    """KL from the Gaussian fit of the rows of ``states [..., D]`` to N(0, I), float32.

    ``row_mask`` (bool, the leading shape of ``states``) selects the rows; by
    default every row counts, zero padding rows included, as in the reference.
    """
    states = jnp.asarray(states)
    if states.ndim < 2:
        raise InputError(
            f"states must have shape (..., d_state), got {states.shape}",
            details={"field": "states", "shape": list(states.shape)},
        )
    if not jnp.issubdtype(states.dtype, jnp.floating):
        raise InputError(f"states must be floating point, got {states.dtype}", details={"field": "states"})
    dim = states.shape[-1]
    if dim <= 0:
        raise InputError("states have zero features (D = 0); the KL needs D >= 1", details={"field": "states"})
    _check_positive("eps", eps)
    x = states.reshape(-1, dim).astype(jnp.float32)
    rows = x.shape[0]
    if rows == 0:
        raise InputError("states must contain at least one row", details={"field": "states"})
    if row_mask is None:
        w = jnp.ones((rows,), jnp.float32)
    else:
        w = _as_mask(row_mask, states.shape[:-1], field="row_mask").reshape(-1).astype(jnp.float32)
    n = jnp.sum(w)
    mean = jnp.sum(x * w[:, None], axis=0) / n
    xc = (x - mean) * w[:, None]
    trace = jnp.sum(xc * xc) / n
    eps_arr = jnp.asarray(eps, jnp.float32)
    # C = xs^T xs shares its min(M, D) eigenvalues with xs xs^T (the Gram identity); the other D - M are 0.
    xs = xc / jnp.sqrt(n)
    logdet = _sum_log_eigenvalues(xs, eps_arr) + (dim - min(rows, dim)) * jnp.log(eps_arr)
    kl = 0.5 * (jnp.sum(mean * mean) + trace - logdet - dim)
    return kl.astype(jnp.float32)


def predictor_loss(
    prediction: jax.Array,
    target: jax.Array,
    *,
    phase: Phase = "phase1",
    alpha: float = 1.0,
    beta: float = 0.1,
    gamma: float = 0.5,
    mask: jax.Array | None = None,
    kl_source: KLSource = "targets",
    kl_row_mask: jax.Array | None = None,
    eps: float = KL_EPS,
) -> PredictionLossResult:
    """The phase rule: phase1 = prediction loss, phase2 = prediction loss + gamma * KL.

    The KL is always computed and reported; by default on the targets (which
    carry no gradient, as in the reference), or on the predictions for the
    ablation in which the regulariser shapes the predictor.
    """
    _check_phase(phase)
    _check_non_negative("gamma", gamma)
    _check_kl_source(kl_source)
    fit = prediction_loss(prediction, target, alpha=alpha, beta=beta, mask=mask)
    regularised = target if kl_source == "targets" else prediction
    kl = lejepa_kl_regularizer(regularised, eps=eps, row_mask=kl_row_mask)
    loss = fit + gamma * kl if phase == "phase2" else fit
    return PredictionLossResult(loss=loss, pred_loss=fit, kl_reg=kl, phase=phase)


def objective(
    prediction: jax.Array,
    target: jax.Array,
    settings: ObjectiveSettings,
    *,
    mask: jax.Array | None = None,
    kl_row_mask: jax.Array | None = None,
) -> PredictionLossResult:
    """:func:`predictor_loss` with the knobs of an :class:`ObjectiveSettings`."""
    return predictor_loss(
        prediction,
        target,
        phase=settings.phase,
        alpha=settings.alpha,
        beta=settings.beta,
        gamma=settings.gamma,
        mask=mask,
        kl_source=settings.kl_source,
        kl_row_mask=kl_row_mask,
    )


# --- validation ----------------------------------------------------------------------------------
def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_pair(prediction: jax.Array, target: jax.Array) -> None:
    if prediction.shape != target.shape:
        raise InputError(
            f"prediction and target shapes must match, got {prediction.shape} and {target.shape}",
            details={"prediction_shape": list(prediction.shape), "target_shape": list(target.shape)},
        )
    if prediction.ndim < 2:
        raise InputError(
            f"prediction and target must have shape (..., d_state), got {prediction.shape}",
            details={"field": "prediction", "shape": list(prediction.shape)},
        )
    if prediction.shape[-1] <= 0:
        raise InputError("prediction and target have zero features (D = 0)", details={"field": "prediction"})
    for name, arr in (("prediction", prediction), ("target", target)):
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise InputError(f"{name} must be floating point, got {arr.dtype}", details={"field": name})


def _as_mask(mask: Any, shape: tuple[int, ...], *, field: str = "mask") -> jax.Array:
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
        raise InputError(
            f"{field} shape {mask.shape} must equal the leading dimensions {tuple(shape)}",
            details={"field": field, "shape": list(mask.shape), "expected_shape": list(shape)},
        )
    if mask.dtype == jnp.bool_:
        valid = mask
    else:
        if _is_concrete(mask) and not bool(np.all((np.asarray(mask) == 0) | (np.asarray(mask) == 1))):
            raise InputError(f"{field} must contain boolean or 0/1 values", details={"field": field})
        valid = mask != 0
    if _is_concrete(valid) and not bool(np.any(np.asarray(valid))):
        raise InputError(f"{field} must include at least one valid element", details={"field": field})
    return valid


def _check_non_negative(name: str, value: Any) -> None:
    if isinstance(value, jax.core.Tracer):
        return  # a sweep's per-variant weight, traced inside its vmapped step; its config checked the values
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(
            f"{name} must be a finite non-negative number, got {value!r}",
            details={"field": name, "value": repr(value)},
        )


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(
            f"{name} must be a finite positive number, got {value!r}", details={"field": name, "value": repr(value)}
        )


def _check_phase(phase: Any) -> None:
    if phase not in ("phase1", "phase2"):
        raise InputError(
            f"phase must be either 'phase1' or 'phase2', got {phase!r}",
            details={"field": "phase", "value": repr(phase)},
        )


def _check_kl_source(kl_source: Any) -> None:
    if kl_source not in ("targets", "predictions"):
        raise InputError(
            f"kl_source must be 'targets' or 'predictions', got {kl_source!r}",
            details={"field": "training.kl_source", "value": repr(kl_source)},
        )


__all__ = [
    "COSINE_EPS",
    "KL_EPS",
    "KLSource",
    "ObjectiveSettings",
    "Phase",
    "PredictionLossResult",
    "cosine_similarity",
    "lejepa_kl_regularizer",
    "objective",
    "prediction_loss",
    "predictor_loss",
]
