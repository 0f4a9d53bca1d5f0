"""JAX-side contract of geno_lewm_jax.model: init, causal mode, rollout, jit, dtypes, featurisation."""

from __future__ import annotations

import math
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError, InvalidEditError, UnsupportedEditError
from geno_lewm_jax.model.layer_stack import layer_count, take_layers
from geno_lewm_jax.model.params import abstract_module, initialized
from geno_lewm_jax.model.validation import check_forward_inputs
from geno_lewm_jax.model import (
    PAD_ID,
    PADDING_ROW_PATH,
    ActionEncoder,
    EditFeatures,
    Predictor,
    build_action_encoder,
    build_predictor,
    count_params,
    featurize_edits,
    padding_row_mask,
    rollout,
)

# Both cross-block kinds and a self block; small so each jit compiles in about a second.
TINY = dict(d_state=40, d_action=12, d_hidden=32, n_heads=4, n_cross_layers=2, n_self_layers=1, ffn_dim=24, max_actions=16)
TRUNC_STD = 0.8796256610342398  # std of a standard normal truncated at +-2


def _edit(rel_pos, ref, alt, edit_type=0):
    return types.SimpleNamespace(rel_pos=rel_pos, edit_type=edit_type, ref_bases=ref, alt_bases=alt)


def _random_predictor(seed, **overrides):
    """A predictor with every param a seeded normal (the zero readout layer included).

    Built abstractly and filled from numpy, so no init program has to compile.
    """
    module = nnx.eval_shape(lambda: Predictor(**{**TINY, **overrides}, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)

    def fill(path, x):
        name = str(path[-1])
        scale = x.shape[-2] if "kernel" in name else x.shape[0] if "embedding" in name else 10.0  # fan-in
        return jnp.asarray(rng.standard_normal(x.shape, dtype=np.float32) / math.sqrt(scale))

    nnx.update(module, jax.tree_util.tree_map_with_path(fill, nnx.state(module, nnx.Param)))
    return module


def _inputs(seed, batch, steps, d_state=TINY["d_state"], d_action=TINY["d_action"]):
    rng = np.random.default_rng(seed)
    state = rng.standard_normal((batch, d_state)).astype(np.float32)
    actions = rng.standard_normal((batch, steps, d_action)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps
    return state, actions, np.arange(steps)[None] < lengths[:, None]


@pytest.fixture(scope="module")
def pair():
    """(non-causal, causal) predictors with the same random weights."""
    plain = _random_predictor(seed=1)
    causal = _random_predictor(seed=1, causal=True)
    return plain, causal


@nnx.jit
def _forward(module, *args):
    return module(*args)


# --- init ----------------------------------------------------------------------------------------
def test_at_init_prediction_is_normalized_state_and_zero_on_padding():
    model = Predictor(**TINY, rngs=nnx.Rngs(3))
    state, actions, mask = _inputs(4, 5, 6)
    out = np.asarray(_forward(model, state, actions, mask))
    unit = state / np.linalg.norm(state, axis=-1, keepdims=True)
    np.testing.assert_allclose(out, np.where(mask[..., None], unit[:, None, :], 0.0), rtol=0, atol=1e-6)
    assert np.all(out[~mask] == 0.0)


def test_predictor_init_distributions():
    model = Predictor(d_state=256, d_action=64, d_hidden=256, n_heads=4, n_cross_layers=4, n_self_layers=3,
                      ffn_dim=512, max_actions=16, rngs=nnx.Rngs(5))
    assert model.state_projection is None
    linears = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Linear) and m is not model.readout_out]
    # action projection, readout hidden; (q, k, v, out, up, down) of the pair's two blocks,
    # of the self stack and of the last self block
    assert len(linears) == 2 + 4 * 6
    for layer in linears:
        w = np.asarray(layer.kernel.get_value())
        std = math.sqrt(2.0 / w.shape[-2])
        for one in w.reshape(-1, *w.shape[-2:]):  # each layer of a stack
            assert np.abs(one).max() <= 2 * std * (1 + 1e-6)
            assert abs(one.std() / (std * TRUNC_STD) - 1) < 0.1
        if w.ndim == 3:  # stacked layers draw from keys of their own
            assert w.shape[0] == 2 and not np.any(w[0] == w[1])
        assert np.all(np.asarray(layer.bias.get_value()) == 0)
    assert np.all(np.asarray(model.readout_out.kernel.get_value()) == 0)
    assert np.all(np.asarray(model.readout_out.bias.get_value()) == 0)
    for emb in (model.token_type_embedding, model.step_position_embedding):
        assert abs(np.asarray(emb.embedding.get_value()).std() / 0.02 - 1) < 0.15
    norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.LayerNorm)]
    assert len(norms) == 1 + 2 + 3 + 2 + 2  # readout, state->action, action->state, self stack, last self block
    for norm in norms:
        assert norm.epsilon == 1e-5
        assert np.all(np.asarray(norm.scale.get_value()) == 1) and np.all(np.asarray(norm.bias.get_value()) == 0)
    for _, param in nnx.iter_graph(model):
        if isinstance(param, nnx.Param):
            assert param.get_value().dtype == jnp.float32


def test_init_values_follow_the_seed():
    """Same seed, same arrays (host-made constants included); another seed, other random arrays."""
    def flat(seed):
        modules = Predictor(**TINY, rngs=nnx.Rngs(seed)), ActionEncoder(d_action=12, rngs=nnx.Rngs(seed))
        return [np.asarray(x) for x in jax.tree.leaves([nnx.state(m, nnx.Param) for m in modules])]

    first, again, other = flat(7), flat(7), flat(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    random_leaves = [(a, b) for a, b in zip(first, other) if np.any(a != a.flat[0])]
    assert random_leaves and all(not np.array_equal(a, b) for a, b in random_leaves)
    # The builders (on the host) and a jitted build (host draws as callbacks, stacks vmapped): the very same bits.
    built = (initialized(Predictor, seed=7, **TINY), initialized(ActionEncoder, seed=7, d_action=12))
    jitted = nnx.jit(lambda: (Predictor(**TINY, rngs=nnx.Rngs(7)), ActionEncoder(d_action=12, rngs=nnx.Rngs(7))))()
    for modules in (built, jitted):
        leaves = jax.tree.leaves([nnx.state(m, nnx.Param) for m in modules])
        assert len(leaves) == len(first) and all(np.array_equal(a, b) for a, b in zip(first, leaves))


def test_builders_put_the_arrays_on_the_default_device():
    """Built on the host, the state ends where JAX's default device is (committed there when it is another)."""
    with jax.default_device(jax.devices()[-1]):
        moved = initialized(ActionEncoder, seed=7, d_action=12)
    here = initialized(ActionEncoder, seed=7, d_action=12)
    for a, b in zip(jax.tree.leaves(nnx.state(moved)), jax.tree.leaves(nnx.state(here))):
        assert a.devices() == {jax.devices()[-1]} and a.committed
        assert b.devices() == {jax.devices()[0]} and not b.committed
        np.testing.assert_array_equal(a, b)


def test_abstract_module_is_what_eval_shape_of_the_build_gives():
    built = initialized(Predictor, seed=3, **TINY)
    want_def, want = nnx.split(nnx.eval_shape(lambda: initialized(Predictor, seed=3, **TINY)))
    got_def, got = nnx.split(abstract_module(built))
    assert got_def == want_def and jax.tree.structure(got) == jax.tree.structure(want)
    assert jax.tree.leaves(got) == jax.tree.leaves(want)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(nnx.state(built)))  # the built one is untouched


def test_building_compiles_nothing_per_parameter_shape():
    """Initial values are drawn on the host: a build of new shapes compiles no XLA program (it once cost ~7 CPU-s)."""
    initialized(Predictor, seed=1, **TINY)
    initialized(ActionEncoder, seed=1, d_action=12)  # the key derivations' few programs, compiled once
    compiles = []

    def count(name, _seconds, **_):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        other = dict(TINY, d_hidden=2 * TINY["d_hidden"], ffn_dim=TINY["ffn_dim"] + 8, n_cross_layers=5, n_self_layers=3)
        initialized(Predictor, seed=2, **other)
        initialized(ActionEncoder, seed=2, d_action=20)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles == []


@pytest.fixture(scope="module")
def encoder():
    return ActionEncoder(d_action=64, rngs=nnx.Rngs(6))


def test_action_encoder_init_follows_torch_defaults(encoder):
    seq = encoder.seq_encoder
    for layer in (encoder.projection_in, encoder.projection_out, seq.token_projection, seq.layers[0].linear1,
                  seq.layers[0].linear2, seq.layers[0].self_attn.out):
        w, b = np.asarray(layer.kernel.get_value()), np.asarray(layer.bias.get_value())
        bound = 1 / math.sqrt(w.shape[0])
        assert np.abs(w).max() <= bound and abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.1
        if layer is seq.layers[0].self_attn.out:
            assert np.all(b == 0)
        else:
            assert np.abs(b).max() <= bound and np.any(b != 0)
    attn = seq.layers[0].self_attn
    qkv = np.concatenate([np.asarray(l.kernel.get_value()) for l in (attn.query, attn.key, attn.value)], axis=1)
    bound = math.sqrt(6 / (256 + 768))
    assert np.abs(qkv).max() <= bound and abs(qkv.std() / (bound / math.sqrt(3)) - 1) < 0.05
    assert all(np.all(np.asarray(l.bias.get_value()) == 0) for l in (attn.query, attn.key, attn.value))
    table = np.asarray(seq.token_embedding.embedding.get_value())
    assert np.all(table[PAD_ID] == 0) and abs(table[:PAD_ID].std() - 1) < 0.02
    assert abs(np.asarray(encoder.type_embedding.embedding.get_value()).std() - 1) < 0.2
    assert np.all(np.asarray(encoder.padding_embedding.get_value()) == 0)
    # torch's TransformerEncoder deep-copies one initialised layer: both layers start equal.
    first, second = (nnx.to_flat_state(nnx.state(layer, nnx.Param)) for layer in seq.layers)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, second))


def test_release_param_counts_and_builders_read_config():
    config = load_config()
    assert count_params(nnx.eval_shape(lambda: build_predictor(config))) == 30_608_896
    assert count_params(nnx.eval_shape(lambda: build_action_encoder(config))) == 2_139_008
    config = load_config(overrides={
        "predictor.d_state": 40, "predictor.d_hidden": 32, "predictor.ffn_dim": 24, "predictor.n_heads": 4,
        "predictor.n_layers": 3, "predictor.n_self_layers": 0, "predictor.causal": True,
        "predictor.compute_dtype": "bfloat16", "action.d_action": 12, "action.max_len": 5, "action.max_window_bp": 100,
        "training.k_buckets": [1, 5], "predictor.remat": True, "predictor.scan_layers": False,
    })
    p = nnx.eval_shape(lambda: build_predictor(config))
    assert (p.d_state, p.d_action, p.d_hidden, p.max_actions, p.causal, p.compute_dtype) == (40, 12, 32, 5, True, "bfloat16")
    assert (p.remat, p.scan_layers) == (True, False)
    assert layer_count(p.cross_pairs) == 1 and p.cross_last is not None  # 3 cross blocks: one pair and a last one
    assert p.self_blocks is None and p.last_self_block is None and p.cross_last.ffn.up.out_features == 24
    a = nnx.eval_shape(lambda: build_action_encoder(config))
    assert (a.d_action, a.max_window_bp) == (12, 100)


def test_job_describe_prints_counts():
    from geno_lewm_jax.job import describe

    config = load_config(overrides={"predictor.d_state": 40, "predictor.d_hidden": 32, "predictor.ffn_dim": 24,
                                    "predictor.n_heads": 4, "action.d_action": 12})
    p = count_params(build_predictor(config))
    a = count_params(build_action_encoder(config))
    assert f"predictor {p:,}, action_encoder {a:,}, total {p + a:,}" in describe(config)


@pytest.mark.parametrize(
    "kwargs",
    [{"d_hidden": 30}, {"n_heads": 0}, {"d_state": True}, {"n_self_layers": -1}, {"compute_dtype": "float16"},
     {"causal": 1}, {"max_actions": 2.0}],
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(InputError):
        Predictor(**{**TINY, **kwargs}, rngs=nnx.Rngs(0))


# --- causal mode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("left_aligned", [True, False])
def test_causal_step_equals_forward_on_prefix(pair, left_aligned):
    plain, causal = pair
    state, actions, mask = _inputs(7, 5, 3)
    if not left_aligned:  # gaps, but step 0 valid so every prefix is a legal forward
        mask = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 1]], bool)
    out = np.asarray(_forward(causal, state, actions, mask))
    for k in range(3):
        prefix = np.asarray(_forward(plain, state, actions[:, : k + 1], mask[:, : k + 1]))
        np.testing.assert_allclose(out[:, k], prefix[:, k], rtol=0, atol=2e-6)
    assert np.all(out[~mask] == 0)


def test_causal_ignores_future_actions_and_plain_does_not(pair):
    plain, causal = pair
    state, actions, mask = _inputs(9, 5, 4)
    mask[:] = True
    changed = actions.copy()
    changed[:, 2:] += 1.0
    np.testing.assert_array_equal(
        np.asarray(_forward(causal, state, actions, mask))[:, :2], np.asarray(_forward(causal, state, changed, mask))[:, :2]
    )
    before = np.asarray(_forward(plain, state, actions, mask))[:, :2]
    assert np.abs(before - np.asarray(_forward(plain, state, changed, mask))[:, :2]).max() > 1e-3


def test_causal_single_step_equals_plain(pair):
    plain, causal = pair
    state, actions, mask = _inputs(10, 5, 1)
    np.testing.assert_array_equal(np.asarray(_forward(causal, state, actions, mask)), np.asarray(_forward(plain, state, actions, mask)))


# --- rollout -------------------------------------------------------------------------------------
def _loop(model, state, actions, mask):
    current, outs = state, []
    for k in range(actions.shape[1]):
        pred = np.asarray(_forward(model, current, actions[:, k : k + 1], np.ones((len(state), 1), bool)))[:, 0]
        active = mask[:, k : k + 1]
        current = np.where(active, pred, current)
        outs.append(np.where(active, pred, 0.0))
    return np.stack(outs, axis=1)


def test_rollout_equals_plain_loop(pair):
    plain, _ = pair
    state, actions, mask = _inputs(11, 5, 4)
    full = np.ones_like(mask)
    np.testing.assert_allclose(np.asarray(rollout(plain, state, actions)), _loop(plain, state, actions, full), rtol=0, atol=1e-6)
    got = np.asarray(rollout(plain, state, actions, mask))
    np.testing.assert_allclose(got, _loop(plain, state, actions, mask), rtol=0, atol=1e-6)
    assert np.all(got[~mask] == 0)
    # Padding after the last valid step does not change the valid steps.
    np.testing.assert_allclose(got[:, :1], np.asarray(rollout(plain, state, actions[:, :1], mask[:, :1])), rtol=0, atol=1e-6)


def test_rollout_traces_inside_jit_and_with_int_mask(pair):
    plain, _ = pair
    state, actions, mask = _inputs(12, 5, 4)
    eager = np.asarray(rollout(plain, state, actions, mask))
    jitted = nnx.jit(lambda m, s, a, k: rollout(m, s, a, k))(plain, state, actions, mask)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(rollout(plain, state, actions, mask.astype(np.int32))), eager)


# --- jit, grads and dtypes -----------------------------------------------------------------------
def test_encoder_and_predictor_jit_and_differentiate(encoder):
    model = _random_predictor(seed=2, d_action=64)
    rows = [[_edit(5, "A", "C", 0), _edit(900, "ACGTACG", "A", 2)], [_edit(12_287, "AC", "GT", 3)]]
    features = jax.tree.map(jnp.asarray, featurize_edits(rows, k=3))
    state = jnp.asarray(np.random.default_rng(0).standard_normal((2, TINY["d_state"])), jnp.float32)
    out = nnx.jit(lambda enc, pred: pred(state, enc(features), features.mask))(encoder, model)
    assert out.shape == (2, 3, TINY["d_state"]) and np.all(np.isfinite(np.asarray(out)))
    weights = jnp.arange(64.0)
    grads = nnx.jit(nnx.grad(lambda enc: jnp.sum(enc(features) ** 2 * weights)))(encoder)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    table_grad = np.asarray(grads["seq_encoder"]["token_embedding"]["embedding"].get_value())
    assert np.abs(table_grad[PAD_ID]).max() > 0  # empty 6-mer slots do feed the micro-encoder...
    masked = jax.tree.map(jnp.multiply, grads, padding_row_mask(grads))  # ...so the trainer masks that row
    masked_table = np.asarray(masked["seq_encoder"]["token_embedding"]["embedding"].get_value())
    assert np.all(masked_table[PAD_ID] == 0) and np.array_equal(masked_table[:PAD_ID], table_grad[:PAD_ID])


def test_padding_row_mask_on_pure_dicts_and_nested_trees(encoder):
    pure = nnx.to_pure_dict(nnx.state(encoder, nnx.Param))
    mask = padding_row_mask({"action_encoder": pure, "predictor": {"embedding": jnp.ones((3, 2))}})
    row = np.asarray(mask["action_encoder"][PADDING_ROW_PATH[0]][PADDING_ROW_PATH[1]][PADDING_ROW_PATH[2]])
    assert row.shape == (PAD_ID + 1, 1) and row[PAD_ID, 0] == 0 and row[:PAD_ID].min() == 1
    assert float(mask["predictor"]["embedding"]) == 1.0
    assert float(mask["action_encoder"]["type_embedding"]["embedding"]) == 1.0


def test_trace_time_validation():
    model = Predictor(**TINY, rngs=nnx.Rngs(0))
    state, actions, mask = _inputs(13, 5, 6)
    with pytest.raises(InputError, match="d_state"):
        _forward(model, state[:, :5], actions, mask)
    with pytest.raises(InputError, match="bool array inside jit"):
        _forward(model, state, actions, mask.astype(np.float32))
    # Outside jit a 0/1 mask of any dtype is checked on the host and becomes bool.
    _, _, checked = check_forward_inputs(state, actions, mask.astype(np.float32), d_state=40, d_action=12, max_actions=16)
    assert checked.dtype == np.bool_ and np.array_equal(checked, mask)


def test_inputs_committed_to_different_devices_are_rejected(pair):
    plain, _ = pair
    state, actions, mask = _inputs(16, 5, 4)
    first, second = jax.devices()[:2]
    state, actions = jax.device_put(state, first), jax.device_put(actions, second)
    with pytest.raises(InputError, match="same device"):
        plain(state, actions, mask)
    with pytest.raises(InputError, match="same device"):
        rollout(plain, state, actions)


def test_bfloat16_compute_keeps_float32_params_and_output(pair):
    plain, _ = pair
    fast = _random_predictor(seed=1, compute_dtype="bfloat16")
    state, actions, mask = _inputs(14, 5, 4)
    out = _forward(fast, state, actions, mask)
    assert out.dtype == jnp.float32
    reference = np.asarray(_forward(plain, state, actions, mask))
    np.testing.assert_allclose(np.asarray(out), reference, rtol=0, atol=3e-2)
    assert not np.array_equal(np.asarray(out), reference)
    assert all(p.get_value().dtype == jnp.float32 for _, p in nnx.iter_graph(fast) if isinstance(p, nnx.Param))
    graph, params = nnx.split(fast)
    text = str(jax.make_jaxpr(lambda p: nnx.merge(graph, p)(state, actions, mask))(params))
    assert "bf16" in text and "dot_general" in text


def test_long_rollout_upcast_branch_runs():
    model = _random_predictor(seed=3, max_actions=24, compute_dtype="bfloat16")
    state, actions, mask = _inputs(15, 2, 22)
    out = _forward(model, state, actions, mask)
    assert out.shape == (2, 22, TINY["d_state"]) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out)[mask], axis=-1), 1.0, atol=1e-5)


# --- featurisation -------------------------------------------------------------------------------
def test_featurize_layout_padding_and_pytree():
    rows = [[_edit(3, "A", "C", 0)], [_edit(7, "ACGTACGT", "A", 2), _edit(11, "G", "GTTTTTTTTTTTTTTT", 1)]]
    f = featurize_edits(rows, k=4)
    assert f.shape == (2, 4)
    assert [a.dtype for a in (f.rel_pos, f.edit_type, f.ref_ids, f.alt_ids)] == [np.int32] * 4 and f.mask.dtype == bool
    np.testing.assert_array_equal(f.mask, [[1, 0, 0, 0], [1, 1, 0, 0]])
    # "ACGTAC" -> 0,1,2,3,0,1 ; "GT" + "AAAA" -> 2,3,0,0,0,0 (right-padded with A).
    assert f.ref_ids[1, 0].tolist() == [int("012301", 4), int("230000", 4), PAD_ID, PAD_ID]
    assert f.alt_ids[1, 1].tolist() == [int("233333", 4), int("333333", 4), int("333300", 4), PAD_ID]
    assert f.ref_ids[0, 1].tolist() == [PAD_ID] * 4 and f.rel_pos[0, 1] == 0
    assert len(jax.tree.leaves(f)) == 5
    again = featurize_edits(rows).padded(4)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(f)))


@pytest.mark.parametrize(
    ("rows", "kwargs", "error", "field"),
    [
        ([[_edit(1, "A" * 17, "A")]], {}, UnsupportedEditError, "batch[0][0].ref_bases"),
        ([[_edit(1, "A", "C")], [_edit(1, "A", "C" * 17)]], {}, UnsupportedEditError, "batch[1][0].alt_bases"),
        ([[_edit(12_288, "A", "C")]], {}, InputError, "batch[0][0].rel_pos"),
        ([[_edit(100, "A", "C")]], {"max_window_bp": 100}, InputError, "batch[0][0].rel_pos"),
        ([[_edit(-1, "A", "C")]], {}, InvalidEditError, "batch[0][0].rel_pos"),
        ([[_edit(True, "A", "C")]], {}, InvalidEditError, "batch[0][0].rel_pos"),
        ([[_edit(1, "A", "C", 6)]], {}, InvalidEditError, "batch[0][0].edit_type"),
        ([[_edit(1, "A", "C", "SNV")]], {}, InvalidEditError, "batch[0][0].edit_type"),
        ([[_edit(1, "A", "C"), _edit(2, "AN", "A")]], {}, InvalidEditError, "batch[0][1].ref_bases"),
        ([[_edit(1, "A", "c")]], {}, InvalidEditError, "batch[0][0].alt_bases"),
        ([[_edit(1, "", "C")]], {}, InvalidEditError, "batch[0][0].ref_bases"),
        ([[_edit(1, "A", "Cé")]], {}, InvalidEditError, "batch[0][0].alt_bases"),
        ([[_edit(1, "A", b"C")]], {}, InvalidEditError, "batch[0][0].alt_bases"),
        ([[object()]], {}, InvalidEditError, "batch[0][0]"),
        ([[_edit(1, "A", "C")], []], {}, InputError, "batch[1]"),
        ([_edit(1, "A", "C")], {}, InputError, "batch[0]"),
        ([], {}, InputError, "batch"),
        ([[_edit(1, "A", "C")] * 3], {"k": 2}, InputError, "k"),
        ([[_edit(1, "A", "C")]], {"k": 0}, InputError, "k"),
    ],
)
def test_featurize_errors_name_the_field(rows, kwargs, error, field):
    with pytest.raises(error) as info:
        featurize_edits(rows, **kwargs)
    assert info.value.details["field"] == field and field in str(info.value)


def test_action_encoder_input_checks(encoder):
    f = featurize_edits([[_edit(1, "A", "C")]])
    with pytest.raises(InputError, match="EditFeatures"):
        encoder([[_edit(1, "A", "C")]])
    with pytest.raises(InputError, match="ref_ids"):
        encoder(f.replace(ref_ids=f.ref_ids[..., :3]))
    with pytest.raises(InputError, match="mask"):
        encoder(f.replace(mask=f.mask.astype(np.int32)))
    with pytest.raises(InputError, match="max_window_bp=12288"):
        encoder(f.replace(rel_pos=f.rel_pos + 12_288))
    with pytest.raises(InputError, match="ref_ids"):
        encoder(f.replace(ref_ids=f.ref_ids + 1))
    out = _forward(encoder, f)
    assert out.shape == (1, 1, 64) and out.dtype == jnp.float32
    assert isinstance(f, EditFeatures)


def test_importing_the_model_never_imports_torch():
    code = "import sys, geno_lewm_jax, geno_lewm_jax.model, geno_lewm_jax.interop; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""})


def test_attention_over_one_key_reads_its_value_bit_for_bit():
    """The one-key shortcut (K = 1 state->action blocks) equals the softmax path, gradients included."""
    from geno_lewm_jax.model.attention import Attention
    from geno_lewm_jax.model.initializers import truncated_fan_in

    attn = Attention(32, 4, qkv_init=truncated_fan_in(32), out_init=truncated_fan_in(32), rngs=nnx.Rngs(5))
    rng = np.random.default_rng(0)
    queries = jnp.asarray(rng.standard_normal((3, 2, 32)), jnp.float32)
    memory = jnp.asarray(rng.standard_normal((3, 1, 32)), jnp.float32)
    mask = jnp.asarray([[[True], [True]], [[False], [True]], [[True], [False]]])

    def softmax_path(module, q, m):
        def heads(x):
            return x.reshape(*x.shape[:-1], 4, 8)

        out = jax.nn.dot_product_attention(
            heads(module.query(q)), heads(module.key(m)), heads(module.value(m)), mask=mask[:, None]
        )
        return module.out(out.reshape(*out.shape[:-2], -1))

    def loss(fn):
        return lambda module, q, m: jnp.sum(jnp.sin(fn(module, q, m)))

    fast, slow = attn(queries, memory, mask), softmax_path(attn, queries, memory)
    assert fast.shape == (3, 2, 32) and np.array_equal(fast, slow)
    grad = nnx.grad(loss(lambda module, q, m: module(q, m, mask)), argnums=(0, 1, 2))
    grad_slow = nnx.grad(loss(softmax_path), argnums=(0, 1, 2))
    (g_fast, gq_fast, gm_fast), (g_slow, gq_slow, gm_slow) = grad(attn, queries, memory), grad_slow(attn, queries, memory)
    assert np.array_equal(gq_fast, gq_slow) and not np.any(gq_slow)  # the queries do not matter
    assert np.array_equal(gm_fast, gm_slow)
    fast_leaves, slow_leaves = nnx.to_pure_dict(g_fast), nnx.to_pure_dict(g_slow)
    for name in ("query", "key", "value", "out"):
        for part in ("kernel", "bias"):
            assert np.array_equal(fast_leaves[name][part], slow_leaves[name][part]), (name, part)
    assert not np.any(slow_leaves["query"]["kernel"]) and not np.any(slow_leaves["key"]["kernel"])


@pytest.mark.parametrize("k", [1, 3])
def test_the_last_self_block_updates_only_the_action_tokens_it_reads_out(k):
    """Skipping the state token's own update in the last self block changes no prediction or gradient.

    Each row's update reads only its own query, so this is exact in real arithmetic;
    in float32 the smaller matmuls may round differently (outputs ~1e-7 apart at K = 1,
    gradients ~5e-7 of their size; bit for bit at K = 3 here).
    """
    from geno_lewm_jax.model.predictor import Predictor

    model = Predictor(d_state=32, d_action=8, d_hidden=32, n_heads=4, n_cross_layers=2, n_self_layers=2, ffn_dim=32, rngs=nnx.Rngs(3))
    model.readout_out.kernel[...] = jax.random.normal(jax.random.key(1), model.readout_out.kernel.shape) / 8
    rng = np.random.default_rng(k)
    state = jnp.asarray(rng.standard_normal((6, 32)), jnp.float32)
    actions = jnp.asarray(rng.standard_normal((6, k, 8)), jnp.float32)
    mask = jnp.asarray(np.arange(k)[None, :] < rng.integers(1, k + 1, size=6)[:, None])

    def every_row(m):
        steps = mask.shape[1]
        state_token, action_tokens = m.state_token(state), m.action_tokens(actions, jnp.arange(1, steps + 1))
        for i in range(layer_count(m.cross_pairs)):
            state_token, action_tokens = take_layers(m.cross_pairs, i)(state_token, action_tokens, mask)
        tokens = jnp.concatenate([state_token, action_tokens], axis=1)
        token_mask = jnp.concatenate([jnp.ones_like(mask[:, :1]), mask], axis=1)
        for block in [take_layers(m.self_blocks, j) for j in range(layer_count(m.self_blocks))] + [m.last_self_block]:
            tokens = block(tokens, token_mask)  # every row updated, the last block's state row included
        return m.readout(state, tokens[:, 1:], mask)

    def loss_and_grads(fn):
        def loss(m):
            prediction = fn(m)
            return jnp.sum(jnp.sin(3 * prediction)), prediction

        (_, prediction), grads = nnx.jit(nnx.value_and_grad(loss, has_aux=True))(model)
        return prediction, nnx.to_pure_dict(grads)

    prediction, fast = loss_and_grads(lambda m: m.forward(state, actions, mask))
    expected, slow = loss_and_grads(every_row)
    np.testing.assert_allclose(prediction, expected, rtol=0, atol=1e-6)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):  # float32 rounding of gradients up to ~8
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * max(1.0, float(np.max(np.abs(b)))))
    assert any(np.any(a) for a in jax.tree.leaves(fast))


def test_scanned_unrolled_and_rematerialised_layers_agree():
    """The layer scan, its unrolled form and its remat form: the same predictions and gradients (1e-6).

    Two cross pairs (a scan of two) and the last self block, ragged K = 3; the three variants share
    one compiled program.
    """
    sizes = dict(n_cross_layers=4, n_self_layers=1)
    models = [_random_predictor(5, **sizes, **variant) for variant in ({}, {"scan_layers": False}, {"remat": True})]
    state, actions, mask = (jnp.asarray(x) for x in _inputs(6, 4, 3))

    def loss(m):
        prediction = m.forward(state, actions, mask)
        return jnp.sum(jnp.sin(3 * prediction)), prediction

    results = nnx.jit(lambda *ms: [nnx.value_and_grad(loss, has_aux=True)(m) for m in ms])(*models)
    (_, want), want_grads = results[0]
    want_grads = jax.tree.leaves(nnx.to_pure_dict(want_grads))
    assert any(np.any(g) for g in want_grads)
    for (_, got), got_grads in results[1:]:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        got_grads = jax.tree.leaves(nnx.to_pure_dict(got_grads))
        assert len(got_grads) == len(want_grads)
        for a, b in zip(got_grads, want_grads):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * max(1.0, float(np.max(np.abs(b)))))


def test_a_vmapped_build_draws_the_values_of_each_key():
    """Under jax.vmap a host draw runs once per key of the batch (nnx's vmapped construction of a stack)."""
    from geno_lewm_jax.model.blocks import FeedForward

    def state_from(key):
        return nnx.state(FeedForward(8, 12, dtype=None, rngs=nnx.Rngs(key)))

    keys = jax.random.split(jax.random.key(5), 3)
    stacked = jax.vmap(state_from)(keys)
    for i in range(3):
        for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(state_from(keys[i]))):
            np.testing.assert_array_equal(a[i], b)
    assert not np.array_equal(jax.tree.leaves(stacked)[-1][0], jax.tree.leaves(stacked)[-1][1])


def test_stacked_layers_draw_the_keys_of_a_python_loop():
    """Three stacked layers, built eagerly and under jit: a loop's values, and the stream left where the loop
    leaves it."""
    from geno_lewm_jax.model.blocks import FeedForward
    from geno_lewm_jax.model.layer_stack import build_layers

    def make(rngs):
        return FeedForward(8, 12, dtype=None, rngs=rngs)

    def stacked_then_next_key(rngs):
        return build_layers(make, 3, rngs), jax.random.key_data(rngs.params())

    loop_rngs = nnx.Rngs(3)
    loop = [make(loop_rngs) for _ in range(3)]
    after_loop = jax.random.key_data(loop_rngs.params())
    for stacked, next_key in (stacked_then_next_key(nnx.Rngs(3)), nnx.jit(stacked_then_next_key)(nnx.Rngs(3))):
        assert layer_count(stacked) == 3
        for i, layer in enumerate(loop):
            for a, b in zip(jax.tree.leaves(nnx.state(take_layers(stacked, i))), jax.tree.leaves(nnx.state(layer))):
                np.testing.assert_array_equal(a, b)
        assert np.array_equal(after_loop, next_key)
