"""The training objective: prediction loss, the regularisers (LeJEPA KL, SIGReg) and the phase rule.

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
  ``phase2``: loss = prediction loss + gamma * R, where R is the selected
  regulariser (``lejepa_kl``, the reference's; ``sigreg``; or ``none``).

SIGReg (LeJEPA, arXiv 2511.08544, Algorithm 1, with the quadrature of the
LeJEPA and LeWorldModel (arXiv 2603.19312) code) projects the rows onto
random unit directions and, per direction, measures the Epps-Pulley distance
of the projected samples from N(0, 1):
``N * integral |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt`` over t in [-3, 3],
with ``ecf(t) = mean_n exp(i t x_n)`` and N the number of rows. The integrand
is even in t, so it is taken on [0, 3] by the trapezoid rule with doubled
interior weights; the result is the mean over directions. The trainer draws
the directions each step from a key that is a pure function of the run seed
and the step (:func:`regularizer_key`), so a resumed run redraws them exactly.

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
from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError

Phase = Literal["phase1", "phase2"]
KLSource = Literal["targets", "predictions"]
Regularizer = Literal["lejepa_kl", "sigreg", "none"]
REGULARIZERS: tuple[str, ...] = get_args(Regularizer)

COSINE_EPS = 1.0e-8
KL_EPS = 1.0e-6
SIGREG_PROJECTIONS = 1024
"""Directions per step, as LeWorldModel (the LeJEPA minimal example uses 256)."""
SIGREG_INTEGRATION_POINTS = 17
"""Trapezoid nodes on [0, SIGREG_T_MAX], as LeJEPA and LeWorldModel."""
SIGREG_T_MAX = 3.0
"""End of the integration grid, as LeJEPA and LeWorldModel (the Gaussian window is 0.011 there)."""
_HIGHEST = jax.lax.Precision.HIGHEST


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["loss", "pred_loss", "kl_reg", "reg"], meta_fields=["phase"]
)
@dataclasses.dataclass(frozen=True)
class PredictionLossResult:
    """Total loss and its reported parts (float32 scalars); a pytree, so it can leave jit.

    ``kl_reg`` is always the KL (the collapse monitor reads it); ``reg`` is the
    selected regulariser's value, the one phase2 weights by gamma (the KL under
    ``lejepa_kl``, the SIGReg statistic under ``sigreg``, 0 under ``none``).
    """

    loss: jax.Array
    pred_loss: jax.Array
    kl_reg: jax.Array
    phase: Phase
    reg: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """The ablation knobs of the objective, validated once."""

    phase: Phase = "phase1"
    alpha: float = 1.0
    beta: float = 0.1
    gamma: float = 0.5
    kl_source: KLSource = "targets"
    regularizer: Regularizer = "lejepa_kl"
    sigreg_projections: int = SIGREG_PROJECTIONS
    sigreg_integration_points: int = SIGREG_INTEGRATION_POINTS

    def __post_init__(self) -> None:
        _check_phase(self.phase)
        for name in ("alpha", "beta", "gamma"):
            _check_non_negative(name, getattr(self, name))
        _check_kl_source(self.kl_source)
        _check_regularizer(self.regularizer)
        _check_int_at_least("sigreg_projections", self.sigreg_projections, 1)
        _check_int_at_least("sigreg_integration_points", self.sigreg_integration_points, 2)

    @classmethod
    def from_config(cls, config: Any) -> "ObjectiveSettings":
        """Read ``phase`` and ``training.loss_alpha/beta/gamma/kl_source/regularizer/sigreg_*``."""
        t = config.training
        return cls(
            phase=config.phase,
            alpha=t.loss_alpha,
            beta=t.loss_beta,
            gamma=t.loss_gamma,
            kl_source=t.kl_source,
            regularizer=t.regularizer,
            sigreg_projections=t.sigreg_projections,
            sigreg_integration_points=t.sigreg_integration_points,
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
    _check_states(states)
    dim = states.shape[-1]
    _check_positive("eps", eps)
    x = states.reshape(-1, dim).astype(jnp.float32)
    rows = x.shape[0]
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


def regularizer_key(seed: int, step: Any) -> jax.Array:
    """The key of ``step``'s SIGReg directions: a pure function of (run seed, step), so resume needs no RNG state.

    ``seed`` (a Python int, all 64 bits used) is static; ``step`` may be traced.
    Below 2**32 the base key equals ``jax.random.key(seed)``.
    """
    seed = int(seed) % 2**64
    base = jax.random.wrap_key_data(np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32), impl="threefry2x32")
    return jax.random.fold_in(base, step)


def sigreg_directions(key: jax.Array, dim: int, count: int) -> jax.Array:
    """``count`` random unit directions in R^dim, as the columns of a float32 [dim, count] matrix."""
    _check_int_at_least("dim", dim, 1)
    _check_int_at_least("count", count, 1)
    a = jax.random.normal(key, (dim, count), jnp.float32)
    return a / jnp.linalg.norm(a, axis=0, keepdims=True)


def _epps_pulley_grid(points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes t on [0, T_MAX], the N(0, 1) characteristic function there, and the weighted trapezoid weights."""
    t = np.linspace(0.0, SIGREG_T_MAX, points)
    dt = SIGREG_T_MAX / (points - 1)
    weights = np.full(points, 2.0 * dt)  # each interior node stands for t and -t
    weights[[0, -1]] = dt
    gaussian_cf = np.exp(-0.5 * t * t)
    return t.astype(np.float32), gaussian_cf.astype(np.float32), (weights * gaussian_cf).astype(np.float32)


def sigreg_regularizer(
    states: jax.Array,
    directions: jax.Array,
    *,
    integration_points: int = SIGREG_INTEGRATION_POINTS,
    row_mask: jax.Array | None = None,
) -> jax.Array:
    """SIGReg of the rows of ``states [..., D]`` along ``directions [D, P]`` (unit columns), float32.

    The mean over directions of the Epps-Pulley statistic (see the module
    docstring); 0 for rows distributed as N(0, I), larger the further the
    projected rows are from N(0, 1). ``row_mask`` selects the rows (default all).
    """
    states, directions = jnp.asarray(states), jnp.asarray(directions)
    _check_states(states)
    dim = states.shape[-1]
    if directions.ndim != 2 or directions.shape[0] != dim or directions.shape[1] < 1:
        raise InputError(
            f"directions must have shape ({dim}, P>=1) for states of width {dim}, got {directions.shape}",
            details={"field": "directions", "shape": list(directions.shape), "d_state": dim},
        )
    if not jnp.issubdtype(directions.dtype, jnp.floating):
        raise InputError(f"directions must be floating point, got {directions.dtype}", details={"field": "directions"})
    _check_int_at_least("integration_points", integration_points, 2)
    x = states.reshape(-1, dim).astype(jnp.float32)
    if row_mask is None:
        w = jnp.ones((x.shape[0],), jnp.float32)
    else:
        w = _as_mask(row_mask, states.shape[:-1], field="row_mask").reshape(-1).astype(jnp.float32)
    n = jnp.sum(w)
    t, gaussian_cf, weights = _epps_pulley_grid(integration_points)
    projected = jnp.matmul(x, directions.astype(jnp.float32), precision=_HIGHEST)  # [rows, P]
    xt = projected[:, :, None] * t  # [rows, P, T]
    ecf_real = jnp.einsum("r,rpt->pt", w, jnp.cos(xt), precision=_HIGHEST) / n
    ecf_imag = jnp.einsum("r,rpt->pt", w, jnp.sin(xt), precision=_HIGHEST) / n
    distance = jnp.square(ecf_real - gaussian_cf) + jnp.square(ecf_imag)  # |ecf - cf|^2, [P, T]
    statistic = jnp.matmul(distance, weights, precision=_HIGHEST) * n  # [P]
    return jnp.mean(statistic).astype(jnp.float32)


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
    regularizer: Regularizer = "lejepa_kl",
    directions: jax.Array | None = None,
    integration_points: int = SIGREG_INTEGRATION_POINTS,
) -> PredictionLossResult:
    """The phase rule: phase1 = prediction loss, phase2 = prediction loss + gamma * R.

    R is the ``regularizer``: the KL (the reference's), SIGReg along
    ``directions`` (required then), or nothing. The KL is always computed and
    reported. Both regularisers see, by default, the targets (which carry no
    gradient, as in the reference), or the predictions for the ablation in
    which the regulariser shapes the predictor. The KL's rows are
    ``kl_row_mask``'s (the reference's); SIGReg's are the valid positions
    ``mask``, since zero padding rows would put a point mass at 0 on every
    direction.
    """
    _check_phase(phase)
    _check_non_negative("gamma", gamma)
    _check_kl_source(kl_source)
    _check_regularizer(regularizer)
    if regularizer == "sigreg" and directions is None:
        raise InputError("regularizer='sigreg' needs its projection directions", details={"field": "directions"})
    fit = prediction_loss(prediction, target, alpha=alpha, beta=beta, mask=mask)
    regularised = target if kl_source == "targets" else prediction
    kl = lejepa_kl_regularizer(regularised, eps=eps, row_mask=kl_row_mask)
    if regularizer == "lejepa_kl":
        reg = kl
    elif regularizer == "sigreg":
        reg = sigreg_regularizer(regularised, directions, integration_points=integration_points, row_mask=mask)
    else:
        reg = jnp.zeros((), jnp.float32)
    loss = fit + gamma * reg if phase == "phase2" and regularizer != "none" else fit
    return PredictionLossResult(loss=loss, pred_loss=fit, kl_reg=kl, phase=phase, reg=reg)


def objective(
    prediction: jax.Array,
    target: jax.Array,
    settings: ObjectiveSettings,
    *,
    mask: jax.Array | None = None,
    kl_row_mask: jax.Array | None = None,
    key: jax.Array | None = None,
) -> PredictionLossResult:
    """:func:`predictor_loss` with the knobs of an :class:`ObjectiveSettings`.

    Under ``sigreg`` the directions are drawn from ``key`` (required then; see
    :func:`regularizer_key`); the other regularisers ignore it.
    """
    directions = None
    if settings.regularizer == "sigreg":
        if key is None:
            raise InputError("regularizer='sigreg' needs a PRNG key for its directions", details={"field": "key"})
        directions = sigreg_directions(key, jnp.shape(prediction)[-1], settings.sigreg_projections)
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
        regularizer=settings.regularizer,
        directions=directions,
        integration_points=settings.sigreg_integration_points,
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


def _check_states(states: jax.Array) -> None:
    """``states`` is a floating [..., D] array with D >= 1 and at least one row."""
    if states.ndim < 2:
        raise InputError(
            f"states must have shape (..., d_state), got {states.shape}",
            details={"field": "states", "shape": list(states.shape)},
        )
    if not jnp.issubdtype(states.dtype, jnp.floating):
        raise InputError(f"states must be floating point, got {states.dtype}", details={"field": "states"})
    if states.shape[-1] <= 0:
        raise InputError("states have zero features (D = 0); a regulariser needs D >= 1", details={"field": "states"})
    if states.size == 0:
        raise InputError("states must contain at least one row", details={"field": "states"})


def _check_int_at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(
            f"{name} must be an integer >= {low}, got {value!r}", details={"field": name, "value": repr(value)}
        )


def _check_non_negative(name: str, value: Any) -> None:
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


def _check_regularizer(regularizer: Any) -> None:
    if regularizer not in REGULARIZERS:
        raise InputError(
            f"regularizer must be one of {', '.join(REGULARIZERS)}, got {regularizer!r}",
            details={"field": "training.regularizer", "value": repr(regularizer)},
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
    "REGULARIZERS",
    "SIGREG_INTEGRATION_POINTS",
    "SIGREG_PROJECTIONS",
    "SIGREG_T_MAX",
    "KLSource",
    "ObjectiveSettings",
    "Phase",
    "PredictionLossResult",
    "Regularizer",
    "cosine_similarity",
    "lejepa_kl_regularizer",
    "objective",
    "prediction_loss",
    "predictor_loss",
    "regularizer_key",
    "sigreg_directions",
    "sigreg_regularizer",
]
