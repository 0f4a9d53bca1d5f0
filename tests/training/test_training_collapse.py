"""Collapse monitor against geno-lewm 0.2.1's pure-Python float64 implementation."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from geno_lewm.training import CollapseMonitor as RefMonitor
from geno_lewm.training import CollapseThresholds as RefThresholds
from geno_lewm.training import compute_collapse_metrics as ref_metrics
from geno_lewm.training import detect_collapse as ref_detect

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.events import EventLog
from geno_lewm_jax.metrics import MetricsRegistry
from geno_lewm_jax.training import (
    CollapseAlert,
    CollapseMetrics,
    CollapseMonitor,
    CollapseThresholds,
    compute_collapse_metrics,
    detect_collapse,
    record_collapse_metrics,
)
from geno_lewm_jax.training.collapse import METRIC_NAMES, _metric_pass

SIX = METRIC_NAMES[:6]


def batch(seed: int, n: int, d: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((n, d)).astype(np.float32)
    noise = rng.standard_normal((n, d)).astype(np.float32)
    if kind == "independent":
        t = noise
    elif kind == "correlated":
        t = p + 0.3 * noise
    else:  # unit rows, predictions near their targets (the l2 state contract)
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        t = p + 0.1 * noise
        t /= np.linalg.norm(t, axis=1, keepdims=True)
    return p.astype(np.float32), t.astype(np.float32)


@pytest.mark.parametrize("n", [2, 64, 257])
@pytest.mark.parametrize("d", [8, 1024])
@pytest.mark.parametrize("kind", ["independent", "correlated", "unit"])
def test_metrics_match_reference_float64_within_1e5_relative(n, d, kind):
    p, t = batch(n * 7 + d, n, d, kind)
    want = ref_metrics(p.tolist(), t.tolist(), kl_reg=2.5)
    got = compute_collapse_metrics(p, t, kl_reg=2.5)
    for name in SIX:
        w, g = getattr(want, name), getattr(got, name)
        assert abs(g - w) <= 1e-5 * abs(w) + 1e-12, (name, g, w)
    assert got.kl_reg == 2.5


def test_reference_test_vector_and_alerts():
    p = [[1, 0], [0, 1], [1, 1]]
    t = [[1, 0.1], [0.1, 1], [0.9, 1.1]]
    m = compute_collapse_metrics(p, t, kl_reg=0.3)
    expected = {
        "pred_cos_mean": 0.9950371902099892,
        "pred_l2_mean": 0.11380711874576983,
        "target_var_per_dim": 0.18222222222222223,
        "pred_var_per_dim": 0.22222222222222224,
        "pred_target_corr": 0.9908673886137244,
        "pairwise_pred_dist_mean": 1.1380711874576983,
    }
    for name, value in expected.items():
        assert getattr(m, name) == pytest.approx(value, rel=1e-6)  # inputs rounded to float32
    alerts = detect_collapse(m, initial_pairwise_pred_dist_mean=3.0)
    assert [a.criterion for a in alerts] == ["pairwise_pred_dist_mean"] and alerts[0].threshold == 1.5


def test_exact_zero_rows_and_constant_sides_follow_the_reference():
    p = np.array([[0, 0, 0], [1, 2, 3]], np.float32)
    t = np.array([[1, 1, 1], [1, 1, 1]], np.float32)  # constant target: correlation is defined as 0
    want = ref_metrics(p.tolist(), t.tolist(), kl_reg=0.0)
    got = compute_collapse_metrics(p, t, kl_reg=0.0)
    for name in SIX:
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-6, abs=1e-12)
    single = compute_collapse_metrics(p[:1] + 1, t[:1], kl_reg=0.0)
    assert single.pairwise_pred_dist_mean == 0.0 and single.pred_var_per_dim == 0.0


def test_masked_rows_equal_the_metrics_of_the_selected_rows():
    p, t = batch(3, 12, 16, "correlated")
    keep = np.arange(12) % 3 != 1
    p_bad = p.copy()
    p_bad[~keep] = np.nan  # excluded rows may hold anything
    got = compute_collapse_metrics(jnp.asarray(p_bad), jnp.asarray(t), kl_reg=1.0, mask=jnp.asarray(keep))
    want = compute_collapse_metrics(p[keep], t[keep], kl_reg=1.0)
    for name in METRIC_NAMES:
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-6)


def test_metrics_are_one_jitted_pass_without_python_loops_over_rows():
    p, t = batch(4, 64, 32, "unit")
    jaxpr = jax.make_jaxpr(_metric_pass)(p, t, np.ones(64, bool), np.float32(0))
    text = str(jaxpr)
    assert "while" not in text and "scan" not in text  # vectorised, pairwise distances included
    assert "64,64" in text.replace(" ", "")  # the pairwise matrix


@pytest.mark.parametrize("seed", range(5))
def test_detect_collapse_agrees_with_reference(seed):
    rng = np.random.default_rng(seed)
    values = dict(zip(METRIC_NAMES, rng.uniform(0, 20, size=7).tolist()))
    baseline = float(rng.uniform(0, 30))
    thresholds = (float(rng.uniform(0.1, 1)), float(rng.uniform(0.1, 1)), float(rng.uniform(1, 15)))
    from geno_lewm.training import CollapseMetrics as RefMetrics

    want = ref_detect(RefMetrics(**values), thresholds=RefThresholds(*thresholds), initial_pairwise_pred_dist_mean=baseline)
    got = detect_collapse(CollapseMetrics(**values), thresholds=CollapseThresholds(*thresholds), initial_pairwise_pred_dist_mean=baseline)
    assert [(a.criterion, a.value, a.threshold) for a in got] == [(a.criterion, a.value, a.threshold) for a in want]


def test_monitor_cadence_baseline_and_force_follow_the_reference():
    eye = np.eye(2, dtype=np.float32)
    collapsed = np.array([[1, 0], [0.9, 0.1]], np.float32)
    ours, ref = CollapseMonitor(log_every_steps=2), RefMonitor(log_every_steps=2)
    registry = MetricsRegistry()
    for step, (p, t, kl) in enumerate([(eye, eye, 0.0), (eye, eye, 0.0), (eye, eye, 0.0), (collapsed, eye, 11.0)], 1):
        got = ours.observe(p, t, kl_reg=kl, step=step, registry=registry)
        want = ref.observe(p.tolist(), t.tolist(), kl_reg=kl, step=step)
        assert (got is None) == (want is None), step
        if got is not None:
            assert [a.criterion for a in got.alerts] == [a.criterion for a in want.alerts]
            for a, b in zip(got.alerts, want.alerts):
                assert a.threshold == pytest.approx(b.threshold, rel=1e-6)
    assert ours.initial_pairwise_pred_dist_mean == pytest.approx(math.sqrt(2), rel=1e-6)
    assert [a.criterion for a in got.alerts] == ["pred_var_per_dim", "pairwise_pred_dist_mean", "kl_reg"]
    forced = ours.observe(eye, eye, kl_reg=0.0, step=5, force=True, registry=registry)
    assert forced is not None and ours.observe(eye, eye, kl_reg=0.0, step=5, registry=registry) is None
    assert registry.snapshot()["geno_lewm.training.collapse.alert"] == 3.0


def test_caller_baseline_wins_and_is_validated():
    monitor = CollapseMonitor(log_every_steps=1, initial_pairwise_pred_dist_mean=10.0)
    check = monitor.observe(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), kl_reg=0.0, step=1)
    assert "pairwise_pred_dist_mean" in [a.criterion for a in check.alerts]
    with pytest.raises(InputError):
        CollapseMonitor(initial_pairwise_pred_dist_mean=-1.0)
    with pytest.raises(InputError):
        CollapseMonitor(log_every_steps=0)
    with pytest.raises(InputError):
        CollapseThresholds(kl_reg_max=0.0)
    with pytest.raises(InputError):
        monitor.should_log(-1)


def test_nonfinite_policy_raise_names_the_offending_cell():
    p, t = batch(5, 4, 6, "correlated")
    p[2, 3] = np.inf
    with pytest.raises(InputError) as info:
        compute_collapse_metrics(p, t, kl_reg=1.0)
    assert info.value.details == {"field": "prediction", "row": 2, "column": 3, "count": 1}
    with pytest.raises(InputError, match="kl_reg"):
        compute_collapse_metrics(t, t, kl_reg=float("nan"))


def test_nonfinite_policy_in_the_monitor_records_and_alerts_instead_of_crashing(tmp_path):
    p, t = batch(6, 4, 6, "correlated")
    p[0, 0] = np.nan
    log = EventLog(tmp_path / "train.log")
    registry = MetricsRegistry()
    monitor = CollapseMonitor(log_every_steps=1)
    check = monitor.observe(p, t, kl_reg=1.0, step=1, logger=log, registry=registry)
    log.close()
    assert check.alerts[-1].criterion == "non_finite" and check.alerts[-1].value >= 1
    assert monitor.initial_pairwise_pred_dist_mean is None  # a NaN never becomes the baseline
    lines = (tmp_path / "train.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # strict JSON: json.loads rejects nothing here ...
    assert all("NaN" not in line and "Infinity" not in line for line in lines)  # ... and no NaN tokens
    metrics = next(r for r in records if r["event"] == "training.collapse.metrics")
    assert metrics["pred_cos_mean"] is None and metrics["step"] == 1
    assert math.isnan(registry.snapshot()["geno_lewm.training.collapse.pred_cos_mean"])


def test_record_writes_seven_gauges_and_one_record_per_alert(tmp_path):
    registry = MetricsRegistry()
    metrics = CollapseMetrics(*[float(i) for i in range(7)])
    log = EventLog(tmp_path / "train.log")
    record_collapse_metrics(
        metrics, alerts=(CollapseAlert("kl_reg", 6.0, 5.0),), logger=log, step=9, registry=registry
    )
    log.close()
    snap = registry.snapshot()
    assert {f"geno_lewm.training.collapse.{n}": float(i) for i, n in enumerate(METRIC_NAMES)}.items() <= snap.items()
    assert snap["geno_lewm.training.collapse.alert"] == 1.0
    records = [json.loads(line) for line in (tmp_path / "train.log").read_text().splitlines()]
    assert [r["event"] for r in records] == ["training.collapse.metrics", "training.collapse.alert"]
    assert records[1] == {**records[1], "criterion": "kl_reg", "value": 6.0, "threshold": 5.0, "step": 9}
    with pytest.raises(InputError):
        record_collapse_metrics(metrics, step=-1, registry=registry)


@pytest.mark.parametrize(
    ("prediction", "target", "match"),
    [
        ([], [[1.0]], "at least one row"),
        ([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]], "rectangular"),
        ([[True, False]], [[1.0, 2.0]], "numeric"),
        ([["a", "b"]], [[1.0, 2.0]], "values must be numeric"),
        ([1.0, 2.0], [1.0, 2.0], "2D"),
        ([[1.0, 2.0]], [[1.0, 2.0], [3.0, 4.0]], "batch size"),
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], "latent dimension"),
        (np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32), "at least one value"),
    ],
)
def test_bad_inputs_are_input_errors_like_the_reference(prediction, target, match):
    with pytest.raises(InputError, match=match):
        compute_collapse_metrics(prediction, target, kl_reg=0.0)
    with pytest.raises(Exception) as ref:
        ref_metrics(prediction.tolist() if isinstance(prediction, np.ndarray) else prediction,
                    target.tolist() if isinstance(target, np.ndarray) else target, kl_reg=0.0)
    assert type(ref.value).__name__ == "InputError"


# --- code written against geno-lewm 0.2.1: its logger shape and tensor-like inputs ----------------
class RefStyleLogger:
    """The reference logger's shape (info/warn with keyword fields), recording each call in order."""

    def __init__(self):
        self.calls = []

    def info(self, event, **fields):
        self.calls.append(("info", event, list(fields.items())))

    def warn(self, event, **fields):
        self.calls.append(("warn", event, list(fields.items())))


class TensorLike:
    """Offers only what the reference reads from a tensor: detach(), cpu() and tolist()."""

    def __init__(self, rows):
        self.rows, self.seen = rows, []

    def detach(self):
        self.seen.append("detach")
        return self

    def cpu(self):
        self.seen.append("cpu")
        return self

    def tolist(self):
        self.seen.append("tolist")
        return self.rows


@pytest.mark.parametrize("step", [7, None])
def test_reference_style_logger_gets_the_records_of_the_reference_field_for_field(step):
    from geno_lewm.training import CollapseAlert as RefAlert
    from geno_lewm.training import CollapseMetrics as RefMetrics
    from geno_lewm.training import record_collapse_metrics as ref_record

    values = [0.5, 0.25, 2.0, 0.75, -0.125, 3.5, 12.0]
    alerts = [("pred_var_per_dim", 0.75, 1.0), ("kl_reg", 12.0, 10.0)]
    theirs, mine = RefStyleLogger(), RefStyleLogger()
    ref_record(RefMetrics(*values), alerts=[RefAlert(*a) for a in alerts], logger=theirs, step=step)
    record_collapse_metrics(
        CollapseMetrics(*values), alerts=[CollapseAlert(*a) for a in alerts], logger=mine, step=step, registry=MetricsRegistry()
    )
    assert mine.calls == theirs.calls  # events, levels, field names, field order and values
    assert [c[:2] for c in mine.calls] == [("info", "training.metric")] * 7 + [("warn", "training.collapse.alert")] * 2


def test_the_reference_logger_itself_writes_the_same_jsonl_for_both(tmp_path):
    from geno_lewm.observability import get_logger
    from geno_lewm.training import CollapseAlert as RefAlert
    from geno_lewm.training import CollapseMetrics as RefMetrics
    from geno_lewm.training import record_collapse_metrics as ref_record

    values = [0.5, 0.25, 2.0, 0.75, -0.125, 3.5, 12.0]
    ref_record(RefMetrics(*values), alerts=[RefAlert("kl_reg", 12.0, 10.0)], step=4,
               logger=get_logger("training", run_id="ref", log_dir=tmp_path, pretty=False))
    record_collapse_metrics(CollapseMetrics(*values), alerts=[CollapseAlert("kl_reg", 12.0, 10.0)], step=4,
                            logger=get_logger("training", run_id="ours", log_dir=tmp_path, pretty=False),
                            registry=MetricsRegistry())

    def records(run_id):
        rows = [json.loads(line) for line in (tmp_path / f"{run_id}.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("ts", "run_id")} for r in rows]

    assert records("ours") == records("ref") and len(records("ref")) == 8


def test_monitor_with_a_reference_style_logger_and_tensor_like_inputs_matches_the_reference():
    p, t = batch(8, 6, 4, "correlated")
    theirs, mine = RefStyleLogger(), RefStyleLogger()
    want = RefMonitor(log_every_steps=5).observe(TensorLike(p.tolist()), TensorLike(t.tolist()), kl_reg=11.0, step=5, logger=theirs)
    pred = TensorLike(p.tolist())
    got = CollapseMonitor(log_every_steps=5).observe(pred, TensorLike(t.tolist()), kl_reg=11.0, step=5, logger=mine,
                                                     registry=MetricsRegistry())
    assert pred.seen == ["detach", "cpu", "tolist"]
    assert [a.criterion for a in got.alerts] == [a.criterion for a in want.alerts] == ["kl_reg"]
    assert len(mine.calls) == len(theirs.calls) == 8
    for (level, event, fields), (ref_level, ref_event, ref_fields) in zip(mine.calls, theirs.calls):
        assert (level, event, [k for k, _ in fields]) == (ref_level, ref_event, [k for k, _ in ref_fields])
        for (key, value), (_, ref_value) in zip(fields, ref_fields):
            assert value == (pytest.approx(ref_value, rel=1e-5) if key == "value" else ref_value), key


def test_tensor_like_inputs_give_the_metrics_of_the_arrays():
    p, t = batch(9, 5, 3, "unit")
    got = compute_collapse_metrics(TensorLike(p.tolist()), TensorLike(t.tolist()), kl_reg=0.5)
    assert got == compute_collapse_metrics(p, t, kl_reg=0.5)
    with pytest.raises(InputError, match="rectangular"):
        compute_collapse_metrics(TensorLike([[1.0, 2.0], [3.0]]), t[:2, :2], kl_reg=0.5)


def test_a_logger_of_neither_shape_is_an_input_error_before_anything_is_recorded():
    registry = MetricsRegistry()
    monitor = CollapseMonitor(log_every_steps=1)
    with pytest.raises(InputError, match="logger must offer emit") as info:
        monitor.observe(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), kl_reg=0.0, step=1, logger=object(),
                        registry=registry)
    assert info.value.details["field"] == "logger"
    assert monitor.initial_pairwise_pred_dist_mean is None and registry.snapshot() == {}


# --- kl_reg without a gradient: recorded, marked not informative, never an alert ---------------------
@pytest.mark.parametrize(
    ("overrides", "informative"),
    [
        ({}, False),  # the default: KL on the frozen encoder's targets
        ({"data.stream": "legacy"}, False),  # the stream switch does not change what the KL measures
        ({"training.kl_source": "predictions"}, True),
        ({"encoder.state_contract": "legacy_raw_v1"}, True),  # the reference's behaviour
    ],
)
def test_kl_reg_is_informative_from_the_config(overrides, informative):
    from geno_lewm_jax.config import load_config
    from geno_lewm_jax.training import kl_reg_is_informative

    assert kl_reg_is_informative(load_config(overrides=overrides)) is informative


def test_uninformative_kl_reg_is_recorded_and_marked_but_never_alerts(tmp_path):
    eye = np.eye(3, dtype=np.float32)
    registry = MetricsRegistry()
    log = EventLog(tmp_path / "train.log")
    reference_style = RefStyleLogger()
    monitor = CollapseMonitor(log_every_steps=1, kl_reg_informative=False)
    checks = [monitor.observe(eye, eye, kl_reg=257.0, step=s, logger=lg, registry=registry)
              for s, lg in ((1, log), (2, reference_style))]
    log.close()
    assert all(c.alerts == () and c.uninformative == ("kl_reg",) and c.metrics.kl_reg == 257.0 for c in checks)
    assert "geno_lewm.training.collapse.alert" not in registry.snapshot()
    records = [json.loads(line) for line in (tmp_path / "train.log").read_text().splitlines()]
    assert [r["event"] for r in records] == ["training.collapse.metrics"]
    assert records[0]["kl_reg"] == 257.0 and records[0]["uninformative"] == ["kl_reg"]
    kl = [dict(f) for level, _, f in reference_style.calls if dict(f)["name"].endswith(".kl_reg")]
    assert kl == [{"step": 2, "name": "geno_lewm.training.collapse.kl_reg", "value": 257.0, "unit": "unitless",
                   "kind": "gauge", "informative": False}]
    assert all(level == "info" for level, _, _ in reference_style.calls)
    # the other criteria still judge, and the default still alerts as the reference does
    collapsed = np.ones((3, 3), np.float32)
    assert [a.criterion for a in monitor.observe(collapsed, eye, kl_reg=257.0, step=3, registry=registry).alerts] == [
        "pred_var_per_dim", "pairwise_pred_dist_mean"]
    assert [a.criterion for a in CollapseMonitor(log_every_steps=1).observe(eye, eye, kl_reg=257.0, step=1).alerts] == ["kl_reg"]
    with pytest.raises(InputError, match="kl_reg_informative"):
        CollapseMonitor(kl_reg_informative="no")
