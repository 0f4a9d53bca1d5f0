"""Weight exchange with the reference torch modules: names, order, strictness, bitwise round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flax import nnx
from geno_lewm.action import ActionEncoder as RefActionEncoder
from geno_lewm.predictor import Predictor as RefPredictor
from model_support import SMALL, randomize_

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.interop import from_reference_state_dict, to_reference_state_dict
from geno_lewm_jax.model import ActionEncoder, Predictor, count_params

IDENTITY = {**SMALL, "d_state": SMALL["d_hidden"], "n_cross_layers": 3, "n_self_layers": 2}


def _params(module) -> dict:
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def _build(kind: str, seed: int):
    """A fresh reference module and a freshly initialised one of ours, same shapes."""
    if kind == "encoder":
        return RefActionEncoder(d_action=SMALL["d_action"]), ActionEncoder(d_action=SMALL["d_action"], rngs=nnx.Rngs(seed))
    kwargs = SMALL if kind == "predictor" else IDENTITY
    return RefPredictor(**kwargs), Predictor(**kwargs, rngs=nnx.Rngs(seed))


@pytest.fixture(scope="module", params=["predictor", "predictor_identity", "encoder"])
def built(request):
    ref, ours = _build(request.param, seed=3)
    return request.param, randomize_(ref, 4), ours


def test_names_order_shapes_and_strict_load(built):
    kind, ref, ours = built
    exported = to_reference_state_dict(ours)
    expected = ref.state_dict()
    assert list(exported) == list(expected)
    for key, value in exported.items():
        assert isinstance(value, np.ndarray) and value.dtype == np.float32 and value.flags.c_contiguous, key
        assert value.shape == tuple(expected[key].shape), key
    fresh, _ = _build(kind, seed=0)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()}, strict=True)
    assert ("state_projection.weight" in exported) == (kind == "predictor")


def test_reference_round_trip_is_bitwise(built):
    """torch -> ours -> torch reproduces every bit (views as uint32 so -0.0 and NaN payloads count)."""
    _, ref, ours = built
    from_reference_state_dict(ours, ref.state_dict())
    exported = to_reference_state_dict(ours)
    for key, value in ref.state_dict().items():
        np.testing.assert_array_equal(exported[key].view(np.uint32), value.numpy().view(np.uint32), err_msg=key)


def test_ours_round_trip_through_torch_is_bitwise(built):
    """ours -> torch (strict load) -> a differently seeded module of ours: identical params."""
    kind, ref, _ = built
    _, source = _build(kind, seed=7)
    target_ref, target = _build(kind, seed=8)
    target_ref.load_state_dict({k: torch.from_numpy(v) for k, v in to_reference_state_dict(source).items()}, strict=True)
    before = _params(target)
    from_reference_state_dict(target, target_ref.state_dict())
    after, wanted = _params(target), _params(source)
    assert any(not np.array_equal(before[k], wanted[k]) for k in wanted)
    for key in wanted:
        np.testing.assert_array_equal(after[key].view(np.uint32), wanted[key].view(np.uint32), err_msg=str(key))


def test_qkv_packing_order_and_kernel_transpose():
    ref, ours = _build("predictor", seed=0)
    randomize_(ref, 9)
    from_reference_state_dict(ours, ref.state_dict())
    h = SMALL["d_hidden"]
    packed = ref.state_dict()["cross_blocks.1.attn.in_proj_weight"].numpy()
    attn = ours.cross_pairs.action_to_state.attn  # reference block 1 = the action->state half of pair 0
    np.testing.assert_array_equal(np.asarray(attn.query.kernel[...])[0], packed[:h].T)
    np.testing.assert_array_equal(np.asarray(attn.key.kernel[...])[0], packed[h : 2 * h].T)
    np.testing.assert_array_equal(np.asarray(attn.value.kernel[...])[0], packed[2 * h :].T)
    bias = ref.state_dict()["cross_blocks.1.attn.in_proj_bias"].numpy()
    np.testing.assert_array_equal(np.asarray(attn.value.bias[...])[0], bias[2 * h :])
    np.testing.assert_array_equal(
        np.asarray(ours.readout_out.kernel[...]), ref.state_dict()["output_mlp.3.weight"].numpy().T
    )


def _sd(kind="predictor"):
    ref, _ = _build(kind, seed=0)
    return {k: v.numpy().copy() for k, v in randomize_(ref, 5).state_dict().items()}


@pytest.mark.parametrize(
    ("case", "edit", "field"),
    [
        ("missing", lambda sd: sd.pop("cross_blocks.1.memory_norm.bias"), "cross_blocks.1.memory_norm.bias"),
        ("unexpected", lambda sd: sd.__setitem__("output_mlp.4.weight", np.zeros(3, np.float32)), "output_mlp.4.weight"),
        ("shape", lambda sd: sd.__setitem__("action_projection.weight", np.zeros((3, 3), np.float32)), "action_projection.weight"),
        ("packed_shape", lambda sd: sd.__setitem__("self_blocks.0.attn.in_proj_weight", np.zeros((48, 48), np.float32)), "self_blocks.0.attn.in_proj_weight"),
        ("int_dtype", lambda sd: sd.__setitem__("token_type_embedding.weight", np.zeros((2, 48), np.int64)), "token_type_embedding.weight"),
        ("bf16_tensor", lambda sd: sd.__setitem__("step_position_embedding.weight", torch.zeros((17, 48), dtype=torch.bfloat16)), "step_position_embedding.weight"),
        ("identity_vs_linear", lambda sd: [sd.pop(k) for k in ("state_projection.weight", "state_projection.bias")], "state_projection.weight"),
    ],
)
def test_bad_state_dicts_raise_naming_the_key_and_leave_module_unchanged(case, edit, field):
    _, ours = _build("predictor", seed=1)
    before = _params(ours)
    sd = _sd()
    edit(sd)
    with pytest.raises(InputError) as info:
        from_reference_state_dict(ours, sd)
    assert field in str(info.value) and info.value.details["field"] == field
    after = _params(ours)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_wrong_module_or_mapping_type():
    _, ours = _build("predictor", seed=1)
    with pytest.raises(InputError, match="Predictor or an ActionEncoder"):
        to_reference_state_dict(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(InputError, match="mapping"):
        from_reference_state_dict(ours, [("a", 1)])
    with pytest.raises(InputError, match="missing key"):
        from_reference_state_dict(ours, _sd("encoder"))


def test_loads_float64_numpy_and_torch_tensors_alike():
    sd_np = {k: v.astype(np.float64) for k, v in _sd().items()}
    sd_torch = {k: torch.from_numpy(v) for k, v in _sd().items()}
    _, a = _build("predictor", seed=1)
    _, b = _build("predictor", seed=2)
    from_reference_state_dict(a, sd_np)
    from_reference_state_dict(b, sd_torch)
    pa, pb = _params(a), _params(b)
    assert all(np.array_equal(pa[k], pb[k]) and pa[k].dtype == np.float32 for k in pa)


# --- parameter counts against the reference's own modules (meta device: no allocation) -----------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"d_state": 1024, "d_action": 64, "n_cross_layers": 6}, 30_608_896),  # release config
        ({"d_state": 1024, "d_action": 512, "n_cross_layers": 4}, 23_858_176),  # constructor defaults
        ({"d_state": 512, "d_action": 64, "n_cross_layers": 6}, 29_821_952),  # schema defaults
        ({"d_state": 768, "d_action": 64, "n_cross_layers": 4}, 22_530_048),  # RFC-like (Identity projection)
    ],
)
def test_predictor_param_counts_match_reference(kwargs, expected):
    with torch.device("meta"):
        ref = RefPredictor(**kwargs)
    ours = nnx.eval_shape(lambda: Predictor(**kwargs, rngs=nnx.Rngs(0)))
    assert count_params(ours) == sum(p.numel() for p in ref.parameters()) == expected


@pytest.mark.parametrize(("d_action", "expected"), [(64, 2_139_008), (512, 2_598_656)])
def test_action_encoder_param_counts_match_reference(d_action, expected):
    with torch.device("meta"):
        ref = RefActionEncoder(d_action=d_action)
    ours = nnx.eval_shape(lambda: ActionEncoder(d_action=d_action, rngs=nnx.Rngs(0)))
    assert count_params(ours) == sum(p.numel() for p in ref.parameters()) == expected


def test_loaded_weights_do_not_follow_later_changes_to_the_torch_tensors():
    ref, ours = _build("encoder", seed=5)
    state = ref.state_dict()
    from_reference_state_dict(ours, state)
    before = _params(ours)
    with torch.no_grad():
        for tensor in state.values():
            tensor.add_(1.0)  # in place, as an optimizer step would
    after = _params(ours)
    assert all(np.array_equal(before[k], after[k]) for k in before)
