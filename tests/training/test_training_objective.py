"""The objective against geno-lewm 0.2.1's ``predictor/losses.py`` (float64 KL, torch cosine)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from geno_lewm.predictor.losses import lejepa_kl_regularizer as ref_kl
from geno_lewm.predictor.losses import predictor_loss as ref_predictor_loss

from geno_lewm_jax import flags as flag_defs
from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError, InvalidConfigError
from geno_lewm_jax.objective import (
    ObjectiveSettings,
    cosine_similarity,
    lejepa_kl_regularizer,
    objective,
    prediction_loss,
    predictor_loss,
    regularizer_key,
    sigreg_directions,
    sigreg_regularizer,
)

kl_jit = jax.jit(lejepa_kl_regularizer)


def rows(seed: int, n: int, d: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if kind == "unit":  # the l2_normalized_v2 state contract
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    elif kind == "raw":  # legacy raw Carbon states: offset, anisotropic
        x = (3.0 + x * rng.uniform(0.1, 4.0, size=d)).astype(np.float32)
    return x


def reference_kl(x: np.ndarray) -> float:
    return float(ref_kl(torch.from_numpy(x)).item())


def ragged(seed: int, b: int, k: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, targets and a left-aligned mask, zero on padding (as the trainer feeds them)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, k + 1, size=b)
    lengths[0] = k
    mask = np.arange(k)[None, :] < lengths[:, None]
    pred = rng.standard_normal((b, k, d)).astype(np.float32)
    pred /= np.linalg.norm(pred, axis=-1, keepdims=True)
    target = (pred + 0.5 * rng.standard_normal((b, k, d))).astype(np.float32)
    pred[~mask] = 0.0
    target[~mask] = 0.0
    return pred, target, mask


# --- KL ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [8, 64, 256])
@pytest.mark.parametrize("d", [64, 1024, 3072])
def test_kl_matches_reference_float64_eigvalsh(n, d):
    kinds = ("normal", "unit", "raw") if d < 3072 else ("unit",)
    for i, kind in enumerate(kinds):
        x = rows(100 * n + d + i, n, d, kind)
        want = reference_kl(x)
        got = float(kl_jit(x))
        assert abs(got - want) <= 1e-4 * abs(want), (kind, got, want)


def test_kl_reference_test_vectors():
    x = np.array([[1, 0, 0.5], [0, 1, 0.5], [1, 1, 0], [0.2, 0.3, 0.4]], np.float32)
    np.testing.assert_allclose(float(lejepa_kl_regularizer(x)), 2.9211088489806043, rtol=1e-6)
    np.testing.assert_allclose(float(lejepa_kl_regularizer(x[:2])), 13.287083148245246, rtol=1e-6)


def test_kl_is_float32_and_forms_no_d_by_d_matrix_when_rows_are_fewer():
    x = jnp.ones((8, 3072), jnp.float32) + jnp.arange(8.0)[:, None]
    jaxpr = str(jax.make_jaxpr(lejepa_kl_regularizer)(x))
    assert "3072,3072" not in jaxpr.replace(" ", "")
    assert "f64" not in jaxpr
    assert lejepa_kl_regularizer(x).dtype == jnp.float32


def test_kl_of_duplicated_and_zero_rows_matches_reference():
    # the reference trainer replicates targets across slots and keeps zero padding rows
    x = rows(7, 6, 128, "normal")
    x = np.concatenate([x, x[:2], np.zeros((3, 128), np.float32)])
    assert abs(float(kl_jit(x)) - reference_kl(x)) <= 1e-5 * reference_kl(x)


def test_kl_row_mask_equals_kl_of_the_selected_rows():
    x = rows(3, 12, 96, "unit")
    keep = np.array([True, False] * 6)
    np.testing.assert_allclose(
        float(lejepa_kl_regularizer(x, row_mask=keep)), reference_kl(x[keep]), rtol=1e-5
    )
    many = rows(4, 200, 32, "normal")  # more rows than dimensions: the covariance path
    keep = np.arange(200) % 3 != 0
    np.testing.assert_allclose(
        float(lejepa_kl_regularizer(many, row_mask=keep)), reference_kl(many[keep]), rtol=1e-5
    )


def test_kl_gradient_on_predictions_matches_torch_float64():
    x = rows(11, 12, 48, "unit")
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    ref_kl(xt).backward()
    got = np.asarray(jax.grad(lejepa_kl_regularizer)(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-3, atol=2e-3 * np.abs(xt.grad.numpy()).max())


# --- prediction loss and phases ---------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["phase1", "phase2"])
def test_predictor_loss_matches_reference_on_ragged_masks(phase):
    pred, target, mask = ragged(5, 7, 3, 32)
    ref = ref_predictor_loss(
        torch.from_numpy(pred), torch.from_numpy(target), phase=phase, mask=torch.from_numpy(mask)
    )
    ours = predictor_loss(pred, target, phase=phase, mask=mask)
    assert ours.phase == phase
    np.testing.assert_allclose(float(ours.pred_loss), ref.pred_loss.item(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(ours.kl_reg), ref.kl_reg.item(), rtol=1e-5)
    np.testing.assert_allclose(float(ours.loss), ref.loss.item(), rtol=1e-5)


def test_prediction_loss_without_mask_is_the_plain_mean():
    pred, target, _ = ragged(6, 4, 2, 16)
    ref = ref_predictor_loss(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_allclose(float(prediction_loss(pred, target)), ref.pred_loss.item(), rtol=1e-6)


def test_cosine_clamps_each_norm_like_torch():
    a = np.array([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
    b = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 3.0], [3.0, 4.0, 0.0]], np.float32)
    want = torch.nn.functional.cosine_similarity(torch.from_numpy(a), torch.from_numpy(b), dim=-1, eps=1e-8)
    np.testing.assert_allclose(np.asarray(cosine_similarity(a, b)), want.numpy(), rtol=1e-6)


def test_gradient_is_finite_and_zero_on_padding_rows():
    pred, target, mask = ragged(8, 5, 4, 16)
    grad = np.asarray(jax.grad(lambda p: predictor_loss(p, target, mask=mask, phase="phase2").loss)(pred))
    assert np.all(np.isfinite(grad)) and np.all(grad[~mask] == 0.0) and np.any(grad[mask] != 0.0)
    grad = jax.grad(lambda p: predictor_loss(p, target, mask=mask, phase="phase2", kl_source="predictions").loss)(pred)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_ablation_knobs_change_the_loss_as_documented():
    pred, target, mask = ragged(9, 6, 2, 24)
    base = predictor_loss(pred, target, mask=mask)
    cos_only = predictor_loss(pred, target, mask=mask, beta=0.0)
    mse_only = predictor_loss(pred, target, mask=mask, alpha=0.0)
    np.testing.assert_allclose(float(cos_only.pred_loss) + float(mse_only.pred_loss), float(base.pred_loss), rtol=1e-6)
    heavy = predictor_loss(pred, target, mask=mask, phase="phase2", gamma=2.0)
    np.testing.assert_allclose(float(heavy.loss), float(heavy.pred_loss) + 2.0 * float(heavy.kl_reg), rtol=1e-6)
    on_preds = predictor_loss(pred, target, mask=mask, kl_source="predictions")
    np.testing.assert_allclose(float(on_preds.kl_reg), reference_kl(pred.reshape(-1, 24)), rtol=1e-5)
    # KL on targets carries no gradient; KL on predictions does
    g_t = jax.grad(lambda p: predictor_loss(p, target, mask=mask, phase="phase2", beta=0.0, alpha=0.0).loss)(pred)
    g_p = jax.grad(
        lambda p: predictor_loss(p, target, mask=mask, phase="phase2", beta=0.0, alpha=0.0, kl_source="predictions").loss
    )(pred)
    assert float(jnp.abs(g_t).max()) == 0.0 and float(jnp.abs(g_p).max()) > 0.0


def test_settings_read_the_config_and_default_to_the_reference():
    s = ObjectiveSettings.from_config(load_config(overrides={"phase": "phase1"}))
    assert (s.alpha, s.beta, s.gamma, s.kl_source) == (1.0, 0.1, 0.5, "targets")
    s = ObjectiveSettings.from_config(
        load_config(overrides={"training.loss_gamma": 1.5, "training.kl_source": "predictions"})
    )
    assert (s.phase, s.gamma, s.kl_source) == ("phase2", 1.5, "predictions")
    pred, target, mask = ragged(10, 3, 2, 8)
    out = jax.jit(lambda p, t, m: objective(p, t, s, mask=m))(pred, target, mask)
    np.testing.assert_allclose(float(out.loss), float(out.pred_loss) + 1.5 * float(out.kl_reg), rtol=1e-6)


# --- SIGReg --------------------------------------------------------------------------------------
def numpy_sigreg(states: np.ndarray, directions: np.ndarray, points: int, mask: np.ndarray | None = None) -> float:
    """LeJEPA's Algorithm 1 in float64: complex ECF on the full grid [-3, 3], trapezoid rule, times N."""
    x = states.reshape(-1, states.shape[-1]).astype(np.float64)
    if mask is not None:
        x = x[mask.reshape(-1)]
    t = np.linspace(-3.0, 3.0, 2 * points - 1)  # the same spacing as points nodes on [0, 3]
    gaussian_cf = np.exp(-0.5 * t**2)
    ecf = np.exp(1j * (x @ directions.astype(np.float64))[:, :, None] * t).mean(axis=0)  # [P, T]
    integrand = np.abs(ecf - gaussian_cf) ** 2 * gaussian_cf
    return float(np.mean(np.trapezoid(integrand, t, axis=1) * len(x)))


sigreg_jit = jax.jit(sigreg_regularizer, static_argnames="integration_points")


@pytest.mark.parametrize("kind", ["normal", "unit", "raw"])
def test_sigreg_matches_a_numpy_transcription_of_lejepa_algorithm_1(kind):
    x = rows(7, 96, 24, kind)
    directions = np.asarray(sigreg_directions(jax.random.key(3), 24, 40))
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-6)
    for points in (17, 5):
        ours = float(sigreg_jit(x, directions, integration_points=points))
        np.testing.assert_allclose(ours, numpy_sigreg(x, directions, points), rtol=2e-5, atol=1e-6)


def test_sigreg_counts_only_the_rows_of_its_mask_and_is_small_on_gaussian_rows():
    pred, target, mask = ragged(5, 16, 4, 12)
    directions = np.asarray(sigreg_directions(jax.random.key(0), 12, 32))
    ours = float(sigreg_jit(target, directions, row_mask=mask))
    np.testing.assert_allclose(ours, numpy_sigreg(target, directions, 17, mask), rtol=2e-5)
    gaussian = rows(1, 1000, 12, "normal")
    collapsed = 0.05 * gaussian + 1.0
    assert float(sigreg_jit(gaussian, directions)) < 3.0 < 100.0 < float(sigreg_jit(collapsed, directions))


def test_predictor_loss_weights_the_selected_regularizer_in_phase2():
    pred, target, mask = ragged(21, 4, 3, 16)
    directions = sigreg_directions(jax.random.key(9), 16, 8)

    @jax.jit
    def parts(p):
        on_preds = dict(mask=mask, kl_source="predictions", directions=directions)
        return {
            "kl": predictor_loss(p, target, mask=mask, phase="phase2"),
            "sigreg": predictor_loss(p, target, phase="phase2", regularizer="sigreg", gamma=2.0, **on_preds),
            "phase1": predictor_loss(p, target, phase="phase1", regularizer="sigreg", **on_preds),
            "none": predictor_loss(p, target, mask=mask, phase="phase2", regularizer="none"),
            "grad": jax.grad(
                lambda q: predictor_loss(q, target, phase="phase2", regularizer="sigreg", alpha=0.0, beta=0.0, **on_preds).loss
            )(p),
            "sigreg_alone": sigreg_regularizer(p, directions, row_mask=mask),
            "kl_of_predictions": lejepa_kl_regularizer(p),
        }

    out = jax.device_get(parts(pred))
    kl, sig, phase1, none = out["kl"], out["sigreg"], out["phase1"], out["none"]
    assert kl.reg == kl.kl_reg  # the default is the reference's KL
    np.testing.assert_allclose(sig.reg, out["sigreg_alone"], rtol=1e-6)
    np.testing.assert_allclose(sig.loss, sig.pred_loss + 2.0 * sig.reg, rtol=1e-6)
    np.testing.assert_allclose(sig.kl_reg, out["kl_of_predictions"], rtol=1e-5)  # the KL is still reported
    assert phase1.loss == phase1.pred_loss and phase1.reg == sig.reg
    assert none.loss == none.pred_loss and none.reg == 0.0 and np.isfinite(none.kl_reg)
    grad = out["grad"]
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0.0
    assert np.abs(grad[~mask]).max() == 0.0  # padding rows are not SIGReg's samples


def test_sigreg_directions_come_from_the_run_seed_and_the_step():
    key = regularizer_key(271828, 7)
    assert np.array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.fold_in(jax.random.key(271828), 7)))
    traced = jax.jit(lambda step: regularizer_key(271828, step))(jnp.int32(7))
    assert np.array_equal(jax.random.key_data(traced), jax.random.key_data(key))
    keys = {(seed, step): jax.random.key_data(regularizer_key(seed, step)).tobytes() for seed in (0, 2**32) for step in (1, 2)}
    assert len(set(keys.values())) == len(keys)
    settings = ObjectiveSettings(phase="phase2", regularizer="sigreg", kl_source="predictions", sigreg_projections=6)
    pred, target, mask = ragged(3, 4, 2, 8)

    @jax.jit
    def both(k):
        expected = sigreg_regularizer(pred, sigreg_directions(k, 8, 6), row_mask=mask)
        return objective(pred, target, settings, mask=mask, key=k).reg, expected

    ours, expected = both(key)
    assert float(ours) == float(expected)


def test_the_regularizer_settings_come_from_config_and_flags():
    config = flag_defs.config_from_argv(
        ["prog", "--regularizer=sigreg", "--sigreg_projections=64", "--sigreg_integration_points=9"]
    )
    s = ObjectiveSettings.from_config(config)
    assert (s.regularizer, s.sigreg_projections, s.sigreg_integration_points) == ("sigreg", 64, 9)
    assert ObjectiveSettings.from_config(load_config()).regularizer == "lejepa_kl"
    for field, value in (("sigreg_projections", 0), ("sigreg_integration_points", 1), ("regularizer", "vicreg")):
        with pytest.raises(InvalidConfigError) as info:
            load_config(overrides={f"training.{field}": value})
        assert info.value.details["field"] == f"training.{field}"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p, t, m: predictor_loss(p, t, mask=m, regularizer="sigreg"), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m, regularizer="vicreg"), "field"),
        (lambda p, t, m: objective(p, t, ObjectiveSettings(regularizer="sigreg"), mask=m), "field"),
        (lambda p, t, m: ObjectiveSettings(sigreg_integration_points=1), "field"),
        (lambda p, t, m: sigreg_regularizer(p, np.ones((7, 3), np.float32)), "field"),
        (lambda p, t, m: sigreg_regularizer(p, np.ones((8, 3), np.float32), integration_points=1), "field"),
        (lambda p, t, m: sigreg_regularizer(p[0, 0], np.ones((8, 3), np.float32)), "field"),
        (lambda p, t, m: predictor_loss(p, t[:, :1], mask=m), "prediction_shape"),
        (lambda p, t, m: predictor_loss(p, t, mask=m, phase="phase3"), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m, alpha=-1.0), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m, gamma=float("nan")), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m[:, :1]), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=np.zeros_like(m)), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m.astype(np.int32) * 2), "field"),
        (lambda p, t, m: predictor_loss(p, t, mask=m, kl_source="states"), "field"),
        (lambda p, t, m: predictor_loss(p.astype(np.int32), t.astype(np.int32)), "field"),
        (lambda p, t, m: lejepa_kl_regularizer(p[0, 0]), "field"),
        (lambda p, t, m: lejepa_kl_regularizer(p, eps=0.0), "field"),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_argument(call, field):
    pred, target, mask = ragged(12, 3, 2, 8)
    with pytest.raises(InputError) as info:
        call(pred, target, mask)
    assert field in info.value.details
