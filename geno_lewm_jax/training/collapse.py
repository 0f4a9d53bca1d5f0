"""Collapse monitor: seven batch diagnostics, alert rules, registry and JSONL recording.

The metrics of a [N, D] batch of predictions P and targets T (rows optionally
selected by a mask) are one jitted pass of vectorised reductions on device,
returned to the host in a single small transfer:

* ``pred_cos_mean``: mean row cosine of P and T (0 for a zero row, no eps);
* ``pred_l2_mean``: mean row distance ||P_i - T_i||;
* ``target_var_per_dim`` / ``pred_var_per_dim``: population variance per
  dimension, averaged over dimensions;
* ``pred_target_corr``: Pearson correlation of the flattened P and T (global
  means; 0 when a side is constant);
* ``pairwise_pred_dist_mean``: mean ||P_i - P_j|| over pairs i < j (0 if N < 2),
  from the Gram matrix of the centred rows (translation does not change
  distances, and centring keeps the float32 Gram identity accurate);
* ``kl_reg``: the caller's KL value, passed through.

Everything stays float32: two-pass (centred) moments, and compensated
(double-float) pairwise sums where terms cancel, keep the values within about
1e-6 relative of geno-lewm 0.2.1's float64 pure-Python numbers.

Non-finite values have an explicit policy. :func:`compute_collapse_metrics`
raises :class:`~geno_lewm_jax.errors.InputError` naming the input and the
first offending (row, column) by default (``nonfinite="raise"``, the
reference's contract), or returns the poisoned metrics as NaN
(``nonfinite="propagate"``). :class:`CollapseMonitor` always propagates: a
non-finite metric never crashes the run, it yields a ``non_finite`` alert
(see :func:`detect_collapse`), is recorded as null in strict JSON, and never
becomes the pairwise baseline. Stopping is left to the trainer's NaN policy
and ``training.stop_on_collapse``.

Two logger shapes are accepted, so code written against geno-lewm 0.2.1
keeps working: this project's event sink (``emit``: one
``training.collapse.metrics`` record) and the reference's logger
(``info``/``warn``: one ``training.metric`` record per metric, as 0.2.1
writes them). Inputs may be arrays, nested sequences or tensor-like objects
(``detach``/``cpu``/``tolist``), as in the reference.

``kl_reg`` can be marked *not informative* (``CollapseMonitor(kl_reg_informative=False)``,
decided from a run's config by :func:`kl_reg_is_informative`): its value is
still recorded, flagged as such, but it never raises an alert.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.metrics import REGISTRY, MetricsRegistry
from geno_lewm_jax.training._checks import finite_float, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from geno_lewm_jax.config import Config

METRIC_NAMES: tuple[str, ...] = (
    "pred_cos_mean",
    "pred_l2_mean",
    "target_var_per_dim",
    "pred_var_per_dim",
    "pred_target_corr",
    "pairwise_pred_dist_mean",
    "kl_reg",
)
GAUGE_PREFIX = "geno_lewm.training.collapse."
ALERT_COUNTER = "geno_lewm.training.collapse.alert"
NON_FINITE = "non_finite"
KL_REG = "kl_reg"
METRIC_EVENT = "training.metric"  # the reference logger's per-metric record
ALERT_EVENT = "training.collapse.alert"
_HIGHEST = jax.lax.Precision.HIGHEST


class EventSink(Protocol):
    """Anything that writes one structured JSONL record per call (e.g. ``events.EventLog``)."""

    def emit(self, event: str, **fields: Any) -> None: ...


class ReferenceLogger(Protocol):
    """geno-lewm 0.2.1's logger shape (``geno_lewm.observability.GenoLeWMLogger``)."""

    def info(self, event: str, **fields: Any) -> Any: ...

    def warn(self, event: str, **fields: Any) -> Any: ...


@dataclasses.dataclass(frozen=True, slots=True)
class CollapseMetrics:
    """The seven collapse diagnostics of one batch (Python floats)."""

    pred_cos_mean: float
    pred_l2_mean: float
    target_var_per_dim: float
    pred_var_per_dim: float
    pred_target_corr: float
    pairwise_pred_dist_mean: float
    kl_reg: float

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


@dataclasses.dataclass(frozen=True, slots=True)
class CollapseThresholds:
    """Alert thresholds (RFC-0005 §3.6 defaults), each finite and > 0."""

    pred_var_to_target_var: float = 0.5
    pairwise_to_initial: float = 0.5
    kl_reg_max: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            positive_float(f.name, getattr(self, f.name))


@dataclasses.dataclass(frozen=True, slots=True)
class CollapseAlert:
    """One tripped criterion, with the value and the threshold it crossed."""

    criterion: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "value": self.value, "threshold": self.threshold}


@dataclasses.dataclass(frozen=True, slots=True)
class CollapseCheck:
    """What one monitored observation produced (``uninformative``: criteria recorded but not judged)."""

    metrics: CollapseMetrics
    alerts: tuple[CollapseAlert, ...]
    uninformative: tuple[str, ...] = ()

    @property
    def tripped(self) -> bool:
        return bool(self.alerts)


# --- the jitted reductions -----------------------------------------------------------------------
def _two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """a + b and its exact float rounding error (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _compensated_sum(x: jax.Array) -> jax.Array:
    """Sum over the last axis as a pairwise tree in double-float (hi + lo) arithmetic.

    Sums that cancel (a cosine mean, a correlation numerator near 0) keep about
    1e-6 relative accuracy in float32 this way, where a plain reduction can
    lose two more digits.
    """
    n = x.shape[-1]
    size = 1 << max(0, (n - 1).bit_length())
    hi = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - n)])
    lo = jnp.zeros_like(hi)
    while hi.shape[-1] > 1:
        half = hi.shape[-1] // 2
        hi, err = _two_sum(hi[..., :half], hi[..., half:])
        lo = lo[..., :half] + lo[..., half:] + err
    return hi[..., 0] + lo[..., 0]


@jax.jit
def _metric_pass(p: jax.Array, t: jax.Array, valid: jax.Array, kl: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float32 [7] metrics; int32 [5]: bad P count, first bad P index, same for T, selected rows."""
    rows, dim = p.shape
    bad_p = ~jnp.isfinite(p) & valid[:, None]
    bad_t = ~jnp.isfinite(t) & valid[:, None]
    issues = jnp.stack(
        [
            jnp.sum(bad_p),
            jnp.argmax(bad_p.reshape(-1)),
            jnp.sum(bad_t),
            jnp.argmax(bad_t.reshape(-1)),
            jnp.sum(valid),
        ]
    ).astype(jnp.int32)

    keep = valid[:, None]
    p = jnp.where(keep, p, 0.0)  # excluded rows never touch the sums, even if they hold NaN
    t = jnp.where(keep, t, 0.0)
    w = valid.astype(jnp.float32)
    n = jnp.sum(w)

    def row_norm(x: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(x * x, axis=-1))

    np_, nt = row_norm(p), row_norm(t)
    zero = (np_ == 0) | (nt == 0)
    cos = jnp.where(zero, 0.0, _compensated_sum(p * t) / jnp.where(zero, 1.0, np_ * nt))
    cos_mean = _compensated_sum(w * cos) / n
    l2_mean = jnp.sum(w * row_norm(p - t)) / n

    def centred(x: jax.Array) -> jax.Array:
        return jnp.where(keep, x - jnp.sum(x, axis=0) / n, 0.0)

    pc, tc = centred(p), centred(t)
    var_t = jnp.mean(jnp.sum(tc * tc, axis=0) / n)
    var_p = jnp.mean(jnp.sum(pc * pc, axis=0) / n)

    a = jnp.where(keep, p - _compensated_sum(p.reshape(-1)) / (n * dim), 0.0)
    b = jnp.where(keep, t - _compensated_sum(t.reshape(-1)) / (n * dim), 0.0)
    den = jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))
    num = _compensated_sum((a * b).reshape(-1))
    corr = jnp.where(den == 0, 0.0, num / jnp.where(den == 0, 1.0, den))

    gram = jnp.matmul(pc, pc.T, precision=_HIGHEST)
    sq = jnp.diagonal(gram)
    dist = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))
    pairs = jnp.triu(jnp.outer(w, w), k=1)
    n_pairs = jnp.sum(pairs)
    pairwise = jnp.where(n_pairs > 0, jnp.sum(dist * pairs) / jnp.maximum(n_pairs, 1.0), 0.0)

    metrics = jnp.stack([cos_mean, l2_mean, var_t, var_p, corr, pairwise, kl.astype(jnp.float32)])
    return metrics.astype(jnp.float32), issues


def _host_array(value: Any, name: str) -> jax.Array | np.ndarray:
    """A jax or NumPy array of ``value``: arrays, nested sequences and tensor-like objects.

    Like the reference, a tensor-like object is read through ``detach()``,
    ``cpu()`` and then the array protocol or, where that is missing or fails
    (a bfloat16 torch tensor), ``tolist()``; torch is never imported.
    """
    for method in ("detach", "cpu"):
        fn = getattr(value, method, None)
        if callable(fn):
            value = fn()
    if isinstance(value, (jax.Array, np.ndarray)):
        return value
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not hasattr(value, "__array__"):
        value = tolist()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        if not callable(tolist):
            raise InputError(f"{name} must be rectangular", details={"field": name}) from None
        try:
            array = np.asarray(tolist())
        except ValueError:
            raise InputError(f"{name} must be rectangular", details={"field": name}) from None
    if array.dtype == object:
        raise InputError(f"{name} must be rectangular", details={"field": name})
    return array


def _as_matrix(value: Any, name: str) -> jax.Array | np.ndarray:
    """A validated float32 [N, D] array; jax arrays stay on device.

    Messages keep the reference's phrases (code matches on them) and add the shape.
    """
    value = _host_array(value, name)
    shape = tuple(value.shape)
    if len(shape) == 1 and shape[0] == 0:
        raise InputError(f"{name} must contain at least one row (it is empty)", details={"field": name})
    if len(shape) == 0:
        raise InputError(f"{name} must be a 2D numeric sequence [N, D], got a scalar", details={"field": name, "shape": shape})
    if len(shape) == 1:
        raise InputError(
            f"{name} rows must be numeric sequences: it must be 2D [N, D], got shape {shape}",
            details={"field": name, "shape": shape},
        )
    if len(shape) > 2:
        raise InputError(
            f"{name} values must be numeric: it must be 2D [N, D], got shape {shape}",
            details={"field": name, "shape": shape},
        )
    kind = np.dtype(value.dtype).kind
    if kind not in "fiu":
        raise InputError(f"{name} values must be numeric, got {value.dtype}", details={"field": name})
    if shape[0] == 0:
        raise InputError(f"{name} must contain at least one row (it is empty)", details={"field": name})
    if shape[1] == 0:
        raise InputError(f"{name} rows must contain at least one value (they are empty)", details={"field": name})
    if isinstance(value, jax.Array):
        return value.astype(jnp.float32)
    return value.astype(np.float32, copy=False)


def compute_collapse_metrics(
    prediction: Any,
    target: Any,
    *,
    kl_reg: Any,
    mask: Any = None,
    nonfinite: Literal["raise", "propagate"] = "raise",
) -> CollapseMetrics:
    """The seven metrics of ``prediction`` and ``target`` [N, D] (rows where ``mask`` [N] is True)."""
    p = _as_matrix(prediction, "prediction")
    t = _as_matrix(target, "target")
    if p.shape[0] != t.shape[0]:
        raise InputError(
            f"prediction and target must have the same batch size, got {p.shape[0]} and {t.shape[0]}",
            details={"prediction_rows": p.shape[0], "target_rows": t.shape[0]},
        )
    if p.shape[1] != t.shape[1]:
        raise InputError(
            f"prediction and target must have the same latent dimension, got {p.shape[1]} and {t.shape[1]}",
            details={"prediction_dim": p.shape[1], "target_dim": t.shape[1]},
        )
    if nonfinite not in ("raise", "propagate"):
        raise InputError(f"nonfinite must be 'raise' or 'propagate', got {nonfinite!r}", details={"field": "nonfinite"})
    if isinstance(kl_reg, (jax.Array, np.ndarray, np.generic)):
        if np.shape(kl_reg) != ():
            raise InputError(
                f"kl_reg values must be numeric scalars, got shape {tuple(np.shape(kl_reg))}",
                details={"field": "kl_reg", "shape": tuple(np.shape(kl_reg))},
            )
        kl = kl_reg
    else:
        if isinstance(kl_reg, bool) or not isinstance(kl_reg, (int, float)):
            raise InputError(f"kl_reg values must be numeric, got {type(kl_reg).__name__}", details={"field": "kl_reg"})
        kl = np.float32(kl_reg)
    if mask is None:
        valid: Any = np.ones((p.shape[0],), bool)
    else:
        valid = mask if isinstance(mask, jax.Array) else np.asarray(mask)
        if tuple(valid.shape) != (p.shape[0],) or np.dtype(valid.dtype) != np.bool_:
            raise InputError(
                f"mask must be bool [N={p.shape[0]}], got {valid.dtype} {tuple(valid.shape)}",
                details={"field": "mask", "shape": tuple(valid.shape)},
            )
    values, issues = jax.device_get(_metric_pass(p, t, valid, kl))
    if issues[4] == 0:
        raise InputError("mask must select at least one row", details={"field": "mask"})
    if nonfinite == "raise":
        dim = p.shape[1]
        for name, (count, first) in (("prediction", issues[0:2]), ("target", issues[2:4])):
            if count:
                row, col = divmod(int(first), dim)
                raise InputError(
                    f"{name} values must be finite ({int(count)} non-finite, first at row {row}, column {col})",
                    details={"field": name, "row": row, "column": col, "count": int(count)},
                )
        if not math.isfinite(float(values[6])):
            raise InputError(f"kl_reg values must be finite, got {float(values[6])}", details={"field": "kl_reg"})
    return CollapseMetrics(*(float(v) for v in values))


def detect_collapse(
    metrics: CollapseMetrics,
    *,
    thresholds: CollapseThresholds | None = None,
    initial_pairwise_pred_dist_mean: float | None = None,
    kl_reg_informative: bool = True,
) -> tuple[CollapseAlert, ...]:
    """Tripped criteria, in order: pred_var_per_dim, pairwise_pred_dist_mean, kl_reg, non_finite.

    Strict inequalities, as in the reference. ``non_finite`` (value = number
    of non-finite metrics, threshold 0) is this package's addition; a NaN
    metric trips none of the other three. ``kl_reg_informative=False`` skips
    the kl_reg rule (see :func:`kl_reg_is_informative`).
    """
    th = thresholds if thresholds is not None else CollapseThresholds()
    if initial_pairwise_pred_dist_mean is not None:
        _check_baseline(initial_pairwise_pred_dist_mean)
    _check_bool("kl_reg_informative", kl_reg_informative)
    alerts: list[CollapseAlert] = []
    var_floor = th.pred_var_to_target_var * metrics.target_var_per_dim
    if metrics.pred_var_per_dim < var_floor:
        alerts.append(CollapseAlert("pred_var_per_dim", metrics.pred_var_per_dim, var_floor))
    if initial_pairwise_pred_dist_mean is not None:
        pair_floor = th.pairwise_to_initial * initial_pairwise_pred_dist_mean
        if metrics.pairwise_pred_dist_mean < pair_floor:
            alerts.append(CollapseAlert("pairwise_pred_dist_mean", metrics.pairwise_pred_dist_mean, pair_floor))
    if kl_reg_informative and metrics.kl_reg > th.kl_reg_max:
        alerts.append(CollapseAlert(KL_REG, metrics.kl_reg, th.kl_reg_max))
    bad = sum(not math.isfinite(v) for v in metrics.to_dict().values())
    if bad:
        alerts.append(CollapseAlert(NON_FINITE, float(bad), 0.0))
    return tuple(alerts)


def kl_reg_is_informative(config: Config) -> bool:
    """Whether the monitor's ``kl_reg > kl_reg_max`` rule says anything about this run.

    Under ``training.kl_source=targets`` the KL is computed on the frozen
    Carbon encoder's target states: a constant of the data, with no gradient,
    so the rule would alert at every evaluation whatever the predictor does.
    It is informative when the KL is computed on the predictions. The
    reference's behaviour (always judge kl_reg) is kept under
    ``encoder.state_contract=legacy_raw_v1``: that switch reproduces
    geno-lewm 0.2.1's states, the values its monitor judged;
    ``data.stream=legacy`` changes only the order and K of the tuples, not
    what the KL measures, so it does not decide this.
    """
    return config.training.kl_source == "predictions" or config.encoder.state_contract == "legacy_raw_v1"


def _logger_kind(logger: Any) -> Literal["sink", "reference"] | None:
    """``sink`` for this project's ``emit`` shape, ``reference`` for geno-lewm's ``info``/``warn``."""
    if logger is None:
        return None
    if callable(getattr(logger, "emit", None)):
        return "sink"
    if callable(getattr(logger, "info", None)) and callable(getattr(logger, "warn", None)):
        return "reference"
    raise InputError(
        f"logger must offer emit(event, **fields) or info/warn(event, **fields), got {type(logger).__name__}",
        details={"field": "logger", "type": type(logger).__name__},
    )


def record_collapse_metrics(
    metrics: CollapseMetrics,
    *,
    alerts: Iterable[CollapseAlert] = (),
    logger: EventSink | ReferenceLogger | None = None,
    step: int | None = None,
    registry: MetricsRegistry | None = None,
    uninformative: Iterable[str] = (),
) -> None:
    """Set the seven gauges, count alerts, and (with a logger) write the metrics and one record per alert.

    An event sink gets ``training.collapse.metrics`` {step, <seven metrics>,
    uninformative (only when some)} and ``training.collapse.alert`` {step,
    criterion, value, threshold}; non-finite values are the sink's to make
    strict (the project's EventLog writes null). A reference logger gets
    geno-lewm 0.2.1's records: ``info("training.metric", step, name, value,
    unit, kind)`` per metric (plus ``informative=False`` on an uninformative
    one) and ``warn("training.collapse.alert", step, criterion, value, threshold)``.
    """
    if step is not None:
        non_negative_int("step", step)
    kind = _logger_kind(logger)
    skipped = tuple(uninformative)
    for name in skipped:
        if name not in METRIC_NAMES:
            raise InputError(
                f"uninformative names an unknown metric {name!r}; use one of {', '.join(METRIC_NAMES)}",
                details={"field": "uninformative", "value": repr(name)},
            )
    reg = registry if registry is not None else REGISTRY
    values = metrics.to_dict()
    for name, value in values.items():
        reg.gauge(GAUGE_PREFIX + name).set(value)
    step_field = {} if step is None else {"step": step}
    if kind == "sink":
        marked = {"uninformative": list(skipped)} if skipped else {}
        logger.emit("training.collapse.metrics", **step_field, **values, **marked)  # type: ignore[union-attr]
    elif kind == "reference":
        for name, value in values.items():
            marked = {"informative": False} if name in skipped else {}
            logger.info(  # type: ignore[union-attr]
                METRIC_EVENT, **step_field, name=GAUGE_PREFIX + name, value=value, unit="unitless", kind="gauge", **marked
            )
    for alert in alerts:
        reg.counter(ALERT_COUNTER).inc()
        if kind == "sink":
            logger.emit(ALERT_EVENT, **step_field, **alert.to_dict())  # type: ignore[union-attr]
        elif kind == "reference":
            logger.warn(ALERT_EVENT, **step_field, **alert.to_dict())  # type: ignore[union-attr]


@dataclasses.dataclass(slots=True)
class CollapseMonitor:
    """Scheduled collapse checks with a pairwise-distance baseline.

    ``observe`` runs on steps that are positive multiples of
    ``log_every_steps`` (or any step with ``force=True``). The baseline is the
    caller's ``initial_pairwise_pred_dist_mean`` if given, else the first
    finite observation's own pairwise mean (so that observation cannot trip the
    pairwise rule). To baseline on the untrained model, as RFC-0005 intends,
    observe once with ``force=True`` before training.

    ``kl_reg_informative=False`` records kl_reg as not informative instead of
    judging it (build it from a run's config with :func:`kl_reg_is_informative`);
    the default judges it, as the reference does.
    """

    log_every_steps: int = 500
    thresholds: CollapseThresholds = dataclasses.field(default_factory=CollapseThresholds)
    initial_pairwise_pred_dist_mean: float | None = None
    kl_reg_informative: bool = True

    def __post_init__(self) -> None:
        positive_int("log_every_steps", self.log_every_steps)
        if self.initial_pairwise_pred_dist_mean is not None:
            _check_baseline(self.initial_pairwise_pred_dist_mean)
        _check_bool("kl_reg_informative", self.kl_reg_informative)

    def should_log(self, step: int) -> bool:
        non_negative_int("step", step)
        return step > 0 and step % self.log_every_steps == 0

    def observe(
        self,
        prediction: Any,
        target: Any,
        *,
        kl_reg: Any,
        step: int,
        logger: EventSink | ReferenceLogger | None = None,
        force: bool = False,
        mask: Any = None,
        registry: MetricsRegistry | None = None,
    ) -> CollapseCheck | None:
        """Metrics, alerts and records for a scheduled (or forced) step; None otherwise."""
        if not self.should_log(step) and not force:
            return None
        _logger_kind(logger)  # a logger of neither shape fails before any work
        metrics = compute_collapse_metrics(prediction, target, kl_reg=kl_reg, mask=mask, nonfinite="propagate")
        if self.initial_pairwise_pred_dist_mean is None and math.isfinite(metrics.pairwise_pred_dist_mean):
            self.initial_pairwise_pred_dist_mean = metrics.pairwise_pred_dist_mean
        alerts = detect_collapse(
            metrics,
            thresholds=self.thresholds,
            initial_pairwise_pred_dist_mean=self.initial_pairwise_pred_dist_mean,
            kl_reg_informative=self.kl_reg_informative,
        )
        skipped = () if self.kl_reg_informative else (KL_REG,)
        record_collapse_metrics(
            metrics, alerts=alerts, logger=logger, step=step, registry=registry, uninformative=skipped
        )
        return CollapseCheck(metrics=metrics, alerts=alerts, uninformative=skipped)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be a bool, got {value!r}", details={"field": name, "value": repr(value)})


def _check_baseline(value: Any) -> None:
    if finite_float("initial_pairwise_pred_dist_mean", value) < 0:
        raise InputError(
            f"initial_pairwise_pred_dist_mean must be non-negative, got {value!r}",
            details={"field": "initial_pairwise_pred_dist_mean", "value": value},
        )


__all__ = [
    "ALERT_COUNTER",
    "ALERT_EVENT",
    "GAUGE_PREFIX",
    "KL_REG",
    "METRIC_EVENT",
    "METRIC_NAMES",
    "NON_FINITE",
    "CollapseAlert",
    "CollapseCheck",
    "CollapseMetrics",
    "CollapseMonitor",
    "CollapseThresholds",
    "EventSink",
    "ReferenceLogger",
    "compute_collapse_metrics",
    "detect_collapse",
    "kl_reg_is_informative",
    "record_collapse_metrics",
]
