"""Forward parity with geno-lewm 0.2.1 (fp32, random weights everywhere, 1e-5 max abs error)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flax import nnx
from geno_lewm.action.encoder import _tokenize_short_dna
from geno_lewm.predictor import ARPredictor
from model_support import (
    KINDS,
    RELEASE,
    action_encoder_pair,
    inputs,
    predictor_pair,
    random_edit,
    random_rows,
    torch_in,
)

from geno_lewm_jax.model import featurize_edits, rollout

TOL = 1e-5
BATCHES = (1, 7, 64)
STEPS = (1, 3, 16)


@nnx.jit
def _forward(module, *args):
    return module(*args)


@pytest.fixture(scope="module")
def small_pair():
    return predictor_pair(seed=11)


@pytest.fixture(scope="module")
def identity_pair():
    """d_state == d_hidden: the reference uses an Identity state projection."""
    return predictor_pair(seed=12, d_state=48, n_cross_layers=3, n_self_layers=2)


@pytest.fixture(scope="module")
def encoder_pair():
    return action_encoder_pair(seed=13)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("steps", STEPS)
def test_predictor_matches_reference(small_pair, batch, steps):
    ref, ours = small_pair
    rng = np.random.default_rng(batch * 100 + steps)
    state, actions, mask = inputs(rng, batch, steps, ref.d_state, ref.d_action)
    with torch.no_grad():
        expected = ref(*torch_in(state, actions, mask)).numpy()
    got = np.asarray(_forward(ours, state, actions, mask))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert np.all(got[~mask] == 0.0)


def test_predictor_identity_state_projection(identity_pair):
    """Identity state projection, an odd cross-block count, two self blocks."""
    ref, ours = identity_pair
    assert ours.state_projection is None
    state, actions, mask = inputs(np.random.default_rng(5), 7, 5, ref.d_state, ref.d_action)
    with torch.no_grad():
        expected = ref(*torch_in(state, actions, mask)).numpy()
    np.testing.assert_allclose(np.asarray(_forward(ours, state, actions, mask)), expected, rtol=0, atol=TOL)


def test_predictor_ragged_non_left_aligned_mask(small_pair):
    """The plain forward accepts any mask with a valid step per row (only rollout needs left alignment)."""
    ref, ours = small_pair
    rng = np.random.default_rng(3)
    state, actions, _ = inputs(rng, 7, 6, ref.d_state, ref.d_action)
    mask = rng.random((7, 6)) < 0.5
    mask[np.arange(7), rng.integers(0, 6, 7)] = True
    with torch.no_grad():
        expected = ref(*torch_in(state, actions, mask)).numpy()
    np.testing.assert_allclose(np.asarray(_forward(ours, state, actions, mask)), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("steps", STEPS)
def test_action_encoder_matches_reference(encoder_pair, batch, steps):
    ref, ours = encoder_pair
    rows = random_rows(np.random.default_rng(batch * 100 + steps), batch, steps)
    with torch.no_grad():
        expected = ref(rows).numpy()
    features = featurize_edits(rows)
    got = np.asarray(_forward(ours, features))
    assert got.shape == expected.shape == (batch, steps, 64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    padding = ref.padding_embedding.detach().numpy()
    np.testing.assert_array_equal(got[~features.mask], np.broadcast_to(padding, got[~features.mask].shape))


# The full B x K grid (each case compiles a scan: ~2-4 s on 2 cores).
@pytest.mark.parametrize("steps", [1, 3, 16])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_rollout_matches_reference(small_pair, batch, steps):
    ref, ours = small_pair
    ar = ARPredictor(ref)
    rng = np.random.default_rng(batch * 1000 + steps)
    state, actions, mask = inputs(rng, batch, steps, ref.d_state, ref.d_action)
    t_state, t_actions, t_mask = torch_in(state, actions, mask)
    np.testing.assert_allclose(
        np.asarray(rollout(ours, state, actions)), ar.rollout_tensor(t_state, t_actions).numpy(), rtol=0, atol=TOL
    )
    got = np.asarray(rollout(ours, state, actions, mask))
    np.testing.assert_allclose(got, ar.rollout_tensor(t_state, t_actions, t_mask).numpy(), rtol=0, atol=TOL)
    assert np.all(got[~mask] == 0.0)


@pytest.mark.slow
def test_release_config_pipeline_matches_reference():
    """d_state 1024, A=64, 6 cross + 2 self blocks: encoder -> predictor -> rollout, end to end."""
    ref_p, ours_p = predictor_pair(seed=21, **RELEASE)
    ref_a, ours_a = action_encoder_pair(seed=22, d_action=64)
    rng = np.random.default_rng(23)
    rows = random_rows(rng, 7, 3)
    features = featurize_edits(rows)
    state = rng.standard_normal((7, 1024)).astype(np.float32)
    with torch.no_grad():
        ref_actions = ref_a(rows)
        t_state, t_mask = torch_in(state, features.mask)
        expected = ref_p(t_state, ref_actions, t_mask).numpy()
        expected_roll = ARPredictor(ref_p).rollout_tensor(t_state, ref_actions, t_mask).numpy()
    actions = _forward(ours_a, features)
    np.testing.assert_allclose(np.asarray(actions), ref_actions.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(np.asarray(_forward(ours_p, state, actions, features.mask)), expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(np.asarray(rollout(ours_p, state, actions, features.mask)), expected_roll, rtol=0, atol=TOL)


def test_kmer_ids_match_reference_tokenizer():
    rng = np.random.default_rng(31)
    edits = [random_edit(rng, KINDS[i % len(KINDS)]) for i in range(500)]
    edits += [random_edit(rng, KINDS[0]) for _ in range(20)]
    features = featurize_edits([[e] for e in edits])
    for i, e in enumerate(edits):
        assert features.ref_ids[i, 0].tolist() == _tokenize_short_dna(e.ref_bases)
        assert features.alt_ids[i, 0].tolist() == _tokenize_short_dna(e.alt_bases)
        assert features.rel_pos[i, 0] == e.rel_pos and features.edit_type[i, 0] == int(e.edit_type)


# --- invalid inputs: same error class as the reference ---------------------------------------
def _mutations(d_state: int, d_action: int, max_actions: int):
    """(name, state, actions, mask) cases, each invalid in one (or, for order checks, two) ways."""
    rng = np.random.default_rng(41)
    s = rng.standard_normal((2, d_state)).astype(np.float32)
    a = rng.standard_normal((2, 3, d_action)).astype(np.float32)
    m = np.ones((2, 3), bool)
    long_a = rng.standard_normal((2, max_actions + 1, d_action)).astype(np.float32)
    return [
        ("state_1d", s[0], a, m),
        ("actions_2d", s, a[:, 0], m),
        ("mask_1d", s, a, m[0]),
        ("batch_mismatch", s[:1], a, m),
        ("mask_shape", s, a, m[:, :2]),
        ("d_state", s[:, :10], a, m),
        ("d_action", s, a[..., :5], m),
        ("zero_steps", s, a[:, :0], m[:, :0]),
        ("too_many_steps", s, long_a, np.ones((2, max_actions + 1), bool)),
        ("int_state", s.astype(np.int32), a, m),
        ("int_actions", s, a.astype(np.int32), m),
        ("mask_value_2", s, a, np.full((2, 3), 2, np.int64)),
        ("mask_value_half", s, a, np.full((2, 3), 0.5, np.float32)),
        ("mask_row_empty", s, a, np.array([[True, True, True], [False, False, False]])),
        ("order_state_before_steps", s[0], a[:, :0], m[:, :0]),
        ("order_d_state_before_too_many", s[:, :10], long_a, np.ones((2, max_actions + 1), bool)),
        ("order_steps_before_dtype", s.astype(np.int32), a[:, :0], m[:, :0]),
    ]


# The words each check's message must contain, on both sides, to show the same check fired first.
_TOPIC = {
    "order_state_before_steps": "state",
    "order_d_state_before_too_many": "d_state",
    "order_steps_before_dtype": "step",
}


def _raised(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test compares whatever was raised
        return exc
    return None


def _assert_same_error(ref_exc, our_exc, name):
    assert ref_exc is not None, f"{name}: the reference accepted it"
    assert our_exc is not None, f"{name}: we accepted it (reference raised {type(ref_exc).__name__})"
    assert type(our_exc).__name__ == type(ref_exc).__name__, (name, ref_exc, our_exc)
    assert our_exc.code == ref_exc.code
    if name in _TOPIC:
        assert _TOPIC[name] in str(ref_exc) and _TOPIC[name] in str(our_exc), (name, ref_exc, our_exc)


@pytest.mark.parametrize("case", [c[0] for c in _mutations(64, 16, 16)])
def test_invalid_predictor_inputs_raise_reference_errors(small_pair, case):
    ref, ours = small_pair
    _, state, actions, mask = next(c for c in _mutations(ref.d_state, ref.d_action, ref.max_actions) if c[0] == case)
    with torch.no_grad():
        ref_exc = _raised(lambda: ref(*torch_in(state, actions, mask)))
    _assert_same_error(ref_exc, _raised(lambda: ours(state, actions, mask)), case)


def _rollout_mutations(d_state: int, d_action: int, max_actions: int):
    keep = {"actions_2d", "batch_mismatch", "mask_shape", "d_state", "d_action", "zero_steps", "too_many_steps",
            "int_state", "int_actions", "mask_value_2", "mask_value_half", "mask_row_empty", "state_1d"}
    cases = [c for c in _mutations(d_state, d_action, max_actions) if c[0] in keep]
    s, a = cases[0][1], cases[0][2]
    cases.append(("mask_right_aligned", s, a, np.array([[True, True, True], [False, True, True]])))
    cases.append(("mask_gap", s, a, np.array([[True, False, True], [True, True, True]])))
    return cases


@pytest.mark.parametrize("case", [c[0] for c in _rollout_mutations(64, 16, 16)])
def test_invalid_rollout_inputs_raise_reference_errors(small_pair, case):
    ref, ours = small_pair
    _, state, actions, mask = next(c for c in _rollout_mutations(ref.d_state, ref.d_action, ref.max_actions) if c[0] == case)
    ar = ARPredictor(ref)
    ref_exc = _raised(lambda: ar.rollout_tensor(*torch_in(state, actions, mask)))
    _assert_same_error(ref_exc, _raised(lambda: rollout(ours, state, actions, mask)), case)


def _edit_cases():
    from geno_lewm.action import EditType, RelEdit

    ok = RelEdit(10, EditType.SNV, "A", "G")
    return {
        "ref_too_long": [[ok, RelEdit(3, EditType.DEL, "A" * 17, "A")]],
        "alt_too_long": [[RelEdit(3, EditType.INS, "A", "C" * 17)], [ok]],
        "rel_pos_at_window": [[ok], [RelEdit(12_288, EditType.SNV, "A", "C")]],
        "rel_pos_far": [[RelEdit(10**7, EditType.SNV, "A", "C")]],
        "order_length_before_position": [[RelEdit(10**7, EditType.SNV, "A", "C"), RelEdit(1, EditType.SNV, "A" * 17, "C")]],
    }


@pytest.mark.parametrize("case", sorted(_edit_cases()))
def test_invalid_edits_raise_reference_errors(encoder_pair, case):
    ref, ours = encoder_pair
    rows = _edit_cases()[case]
    with torch.no_grad():
        ref_exc = _raised(lambda: ref(rows))
    _assert_same_error(ref_exc, _raised(lambda: ours(featurize_edits(rows))), case)
