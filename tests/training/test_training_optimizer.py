"""The optax AdamW chain against geno-lewm 0.2.1's torch AdamW (groups, clip, padding row, LR)."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from geno_lewm.action import ActionEncoder as RefActionEncoder
from geno_lewm.config import load_config as ref_load_config
from geno_lewm.predictor import Predictor as RefPredictor
from geno_lewm.training import build_adamw_optimizer as ref_build_adamw
from geno_lewm.training import set_optimizer_lr as ref_set_lr

from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError
from geno_lewm_jax.interop import from_reference_state_dict, to_reference_state_dict
from geno_lewm_jax.model import PAD_ID, build_action_encoder, build_predictor
from geno_lewm_jax.training import (
    build_adamw_optimizer,
    optimizer_grad_norm,
    optimizer_lr,
    set_optimizer_lr,
    trainable_params,
    weight_decay_mask,
)
from geno_lewm_jax.training.optimizer import clip_by_global_norm_torch, with_learning_rate

SMALL = {
    "predictor.d_state": 48,
    "predictor.d_hidden": 32,
    "predictor.n_heads": 2,
    "predictor.ffn_dim": 40,
    "predictor.n_layers": 2,
    "predictor.n_self_layers": 1,
    "action.d_action": 8,
}


def ref_modules(config):
    p = config.predictor
    torch.manual_seed(0)
    predictor = RefPredictor(
        d_state=p.d_state,
        d_action=config.action.d_action,
        d_hidden=p.d_hidden,
        n_heads=p.n_heads,
        n_cross_layers=p.n_layers,
        n_self_layers=p.n_self_layers,
        ffn_dim=p.ffn_dim,
        max_actions=config.action.max_len,
    )
    return predictor, RefActionEncoder(d_action=config.action.d_action)


def ours_from(ref_pred, ref_enc, config):
    pred = nnx.eval_shape(lambda: build_predictor(config))
    enc = nnx.eval_shape(lambda: build_action_encoder(config))
    from_reference_state_dict(pred, {k: v.detach().numpy().copy() for k, v in ref_pred.state_dict().items()})
    from_reference_state_dict(enc, {k: v.detach().numpy().copy() for k, v in ref_enc.state_dict().items()})
    return pred, enc


def group_sizes(params, mask) -> tuple[int, int]:
    sizes = [(int(np.prod(np.shape(p))), bool(m)) for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))]
    return sum(s for s, m in sizes if m), sum(s for s, m in sizes if not m)


@pytest.mark.parametrize("overrides", [SMALL, {}], ids=["small", "release"])
def test_weight_decay_groups_hold_the_same_parameters_as_the_reference(overrides):
    config = load_config(overrides=overrides)
    ref_pred, ref_enc = ref_modules(config)
    groups = ref_build_adamw(predictor=ref_pred, action_encoder=ref_enc, config=ref_load_config({})).param_groups
    want = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
    params = trainable_params(
        nnx.eval_shape(lambda: build_predictor(config)), nnx.eval_shape(lambda: build_action_encoder(config))
    )
    decay, no_decay = group_sizes(params, weight_decay_mask(params))
    assert (decay, no_decay) == (want["decay"], want["no_decay"])


def test_decay_rule_on_flax_names():
    params = {
        "block": {"kernel": np.zeros((4, 4)), "bias": np.zeros(4)},
        "attn_norm": {"scale": np.zeros(4), "bias": np.zeros(4)},
        "token_type_embedding": {"embedding": np.zeros((2, 4))},
        "padding_embedding": np.zeros(4),
        "weird": {"kernel": np.zeros(4)},  # 1-D: never decayed
    }
    mask = weight_decay_mask(params)
    assert mask["block"] == {"kernel": True, "bias": False}
    assert not any(jax.tree.leaves(mask["attn_norm"])) and not mask["token_type_embedding"]["embedding"]
    assert not mask["padding_embedding"] and not mask["weird"]["kernel"]


def random_grads(ref_pred, ref_enc, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for module in (ref_pred, ref_enc):
        for p in module.parameters():
            p.grad = torch.randn(p.shape, generator=gen) * 0.05
    # torch's padding_idx gives the 6-mer padding row no gradient
    ref_enc.seq_encoder.token_embedding.weight.grad[PAD_ID] = 0.0


def grads_as_tree(ref_pred, ref_enc, config, *, poison_padding_row: bool):
    """Our grads pytree, built by loading the torch .grad tensors into module-shaped containers."""
    pred, enc = ours_from(ref_pred, ref_enc, config)
    from_reference_state_dict(pred, {k: p.grad.numpy().copy() for k, p in ref_pred.named_parameters()})
    enc_grads = {k: p.grad.numpy().copy() for k, p in ref_enc.named_parameters()}
    if poison_padding_row:  # our lookup does send gradient to that row: the optimizer must drop it
        enc_grads["seq_encoder.token_embedding.weight"][PAD_ID] = 7.0
    from_reference_state_dict(enc, enc_grads)
    return trainable_params(pred, enc)


def test_five_updates_equal_torch_adamw_with_clip_and_schedule():
    config = load_config(
        overrides={**SMALL, "optimizer.lr": 1e-2, "optimizer.warmup_steps": 2, "optimizer.grad_clip": 0.5,
                   "training.max_steps": 5}
    )
    ref_config = ref_load_config({"optimizer": {"lr": 1e-2, "warmup_steps": 2, "grad_clip": 0.5}})
    ref_pred, ref_enc = ref_modules(config)
    ref_opt = ref_build_adamw(predictor=ref_pred, action_encoder=ref_enc, config=ref_config)
    pred, enc = ours_from(ref_pred, ref_enc, config)
    params = trainable_params(pred, enc)
    opt = build_adamw_optimizer(config, params)
    state = opt.init(params)
    update = jax.jit(lambda g, s, p: opt.update(g, s, p))
    for step in range(1, 6):
        multiplier = ref_set_lr(ref_opt, step=step, total_steps=5, warmup_steps=2)
        assert set_optimizer_lr(state, step=step, total_steps=5, warmup_steps=2) == multiplier
        assert float(optimizer_lr(state)) == pytest.approx(1e-2 * multiplier, rel=1e-6)
        random_grads(ref_pred, ref_enc, seed=step)
        grads = grads_as_tree(ref_pred, ref_enc, config, poison_padding_row=True)
        norm = torch.nn.utils.clip_grad_norm_(list(ref_pred.parameters()) + list(ref_enc.parameters()), 0.5)
        ref_opt.step()
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert float(optimizer_grad_norm(state)) == pytest.approx(float(norm), rel=1e-5)
    nnx.update(pred, nnx.State(params["predictor"]))
    nnx.update(enc, nnx.State(params["action_encoder"]))
    for ours, ref in ((pred, ref_pred), (enc, ref_enc)):
        mine = to_reference_state_dict(ours)
        for name, value in ref.state_dict().items():
            np.testing.assert_allclose(mine[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    table = to_reference_state_dict(enc)["seq_encoder.token_embedding.weight"]
    assert np.all(table[PAD_ID] == 0.0)  # the padding row never moved


@pytest.mark.parametrize("scale", [0.1, 0.9999995, 1.0, 3.0])
def test_clip_matches_torch_clip_grad_norm(scale):
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((5, 3)).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32)}
    norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())))
    grads = {k: (v / norm * scale).astype(np.float32) for k, v in grads.items()}
    tensors = [torch.nn.Parameter(torch.zeros(v.shape)) for v in grads.values()]
    for t, v in zip(tensors, grads.values()):
        t.grad = torch.from_numpy(v.copy())
    torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    clip = clip_by_global_norm_torch(1.0)
    out, state = clip.update(grads, clip.init(grads))
    for t, got in zip(tensors, out.values()):
        np.testing.assert_allclose(np.asarray(got), t.grad.numpy(), rtol=1e-6)
    assert float(state.grad_norm) == pytest.approx(scale, rel=1e-6)
    off = clip_by_global_norm_torch(0.0)  # 0 disables clipping, as in the reference config
    np.testing.assert_array_equal(np.asarray(off.update(grads, off.init(grads))[0]["a"]), grads["a"])


def test_learning_rate_is_injected_readable_and_settable_in_jit():
    config = load_config(overrides={**SMALL, "optimizer.lr": 2e-3})
    params = {"w": {"kernel": jnp.ones((3, 3))}}
    opt = build_adamw_optimizer(config, params)
    state = opt.init(params)
    assert float(optimizer_lr(state)) == pytest.approx(2e-3)
    swapped = jax.jit(lambda s: with_learning_rate(s, 5e-4))(state)
    assert float(optimizer_lr(swapped)) == pytest.approx(5e-4) and float(optimizer_lr(state)) == pytest.approx(2e-3)
    assert set_optimizer_lr(state, step=3, total_steps=10, warmup_steps=4) == 0.75
    assert float(optimizer_lr(state)) == pytest.approx(1.5e-3)


def test_optimizer_errors_name_the_problem():
    config = load_config(overrides=SMALL)
    with pytest.raises(InputError, match="no trainable .* parameters found"):
        build_adamw_optimizer(config, {})
    sgd = types.SimpleNamespace(optimizer=types.SimpleNamespace(**{**vars(config.optimizer), "name": "sgd-momentum"}))
    with pytest.raises(InputError) as info:
        build_adamw_optimizer(sgd, {"w": jnp.ones((2, 2))})
    assert info.value.details["field"] == "optimizer.name"
    with pytest.raises(InputError, match="learning_rate"):
        set_optimizer_lr(optax.adam(1e-3).init({"w": jnp.ones(2)}), step=1, total_steps=2, warmup_steps=0)
    with pytest.raises(InputError):
        set_optimizer_lr(build_adamw_optimizer(config, {"w": jnp.ones((2, 2))}).init({"w": jnp.ones((2, 2))}),
                         step=3, total_steps=2, warmup_steps=0)
