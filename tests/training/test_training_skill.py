"""Skill over the no-change baseline (compute_skill_metrics) against a NumPy statement of the formula."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.training import compute_skill_metrics


def numpy_skill(pred, target, source, mask):
    """val_delta_r2 and val_cos_skill over the valid pairs, and per step (NaN where a step has none)."""
    copied = np.broadcast_to(source[:, None, :], target.shape)

    def cos(a, b):
        return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))

    def scores(sel):
        if not sel.any():
            return np.nan, np.nan
        err = np.sum((pred[sel] - target[sel]) ** 2)
        base = np.sum((copied[sel] - target[sel]) ** 2)
        return 1.0 - err / base, np.mean(cos(pred[sel], target[sel])) - np.mean(cos(copied[sel], target[sel]))

    per_step = [scores(mask & (np.arange(mask.shape[1]) == k)[None, :]) for k in range(mask.shape[1])]
    return scores(mask), np.array(per_step)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    b, k, s = 6, 4, 8
    source = rng.standard_normal((b, s))
    target = source[:, None, :] + 0.3 * rng.standard_normal((b, k, s))
    pred = target + 0.2 * rng.standard_normal((b, k, s))
    lengths = np.array([1, 3, 2, 1, 3, 2])  # step 3 (the fourth) has no valid pair: bucket padding
    mask = np.arange(k)[None, :] < lengths[:, None]
    return pred.astype(np.float32), (target * mask[..., None]).astype(np.float32), source.astype(np.float32), mask


def test_matches_the_numpy_formula_overall_and_per_step(case):
    pred, target, source, mask = case
    got = jax.jit(compute_skill_metrics)(pred, target, source, mask)
    (r2, cos_gain), per_step = numpy_skill(pred, target, source, mask)
    np.testing.assert_allclose([got.delta_r2, got.cos_skill], [r2, cos_gain], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.delta_r2_k[:3], per_step[:3, 0], rtol=1e-5)
    np.testing.assert_allclose(got.cos_skill_k[:3], per_step[:3, 1], rtol=1e-5, atol=1e-6)
    assert np.isnan(got.delta_r2_k[3]) and np.isnan(got.cos_skill_k[3])
    np.testing.assert_array_equal(got.pairs_k, mask.sum(0))


def test_the_baseline_scores_zero_and_a_perfect_prediction_one(case):
    _, target, source, mask = case
    copy = compute_skill_metrics(np.broadcast_to(source[:, None], target.shape), target, source, mask)
    perfect = compute_skill_metrics(target, target, source, mask)
    assert abs(float(copy.delta_r2)) < 1e-6 and abs(float(copy.cos_skill)) < 1e-6
    assert float(perfect.delta_r2) == pytest.approx(1.0) and float(perfect.cos_skill) > 0


def test_json_fields_trim_empty_steps_and_hold_no_nan(case):
    pred, target, source, mask = case
    fields = compute_skill_metrics(pred, target, source, mask).to_dict()
    assert set(fields) == {"val_delta_r2", "val_cos_skill", "val_delta_r2_k", "val_cos_skill_k"}
    assert len(fields["val_delta_r2_k"]) == 3 and all(isinstance(v, float) for v in fields["val_delta_r2_k"])
    one_step = compute_skill_metrics(pred[:, :1], target[:, :1], source, mask[:, :1]).to_dict(prefix="")
    assert set(one_step) == {"delta_r2", "cos_skill"}  # K = 1: no per-step lists
    unchanged = compute_skill_metrics(pred[:, :1], np.broadcast_to(source[:, None], pred[:, :1].shape), source, mask[:, :1])
    assert unchanged.to_dict()["val_delta_r2"] is None  # no change to explain: null, not NaN


def test_shapes_are_checked_naming_the_argument(case):
    pred, target, source, mask = case
    with pytest.raises(InputError) as info:
        compute_skill_metrics(pred, target, source[:, :3], mask)
    assert info.value.details["field"] == "source"
