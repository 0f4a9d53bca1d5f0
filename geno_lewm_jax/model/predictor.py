"""The action-conditioned cross-attention predictor (reference layout and init).

``Predictor(state [B,S], actions [B,K,A], mask [B,K]) -> [B,K,S]``: a state
token and K action tokens go through alternating state->action /
action->state cross blocks (even index / odd index), then bidirectional self
blocks; each action token is read out as ``normalize(state + MLP(token))``,
zero on padded steps. The last readout Linear starts at zero, so an untrained
predictor returns ``normalize(state)``.

Causal mode (``causal=True``; off by default, as in the reference). In the
reference forward, step k sees later actions twice: through the state token,
which attends to every action, and through the bidirectional self blocks.
Causal mode runs K "views" in one batched pass instead: view k holds its own
copy of the state token and all K action tokens, with every action after k
masked out as a key (and, in action->state blocks, left unchanged, exactly as
padding is). Output k is read from action token k of view k. View k is
therefore the reference forward on the prefix ``actions[:, :k+1]``, padded to
K, so causal output k equals the non-causal forward on that prefix, and K=1 is
identical to the non-causal forward. The price is K times the token work
(the views cannot share state: the action tokens of view k read view k's state
token in the action->state blocks).

Layer stacks. Blocks of one type hold their parameters stacked on a leading
layer axis and run as one ``jax.lax.scan`` (:mod:`geno_lewm_jax.model.layer_stack`),
so XLA compiles one body per block type instead of one per block: the cross
blocks as ``cross_pairs`` (a state->action then an action->state block per
layer; an odd last state->action block is ``cross_last``), the self blocks
but the last as ``self_blocks``. The last self block, ``last_self_block``,
runs on its own because it updates only the action tokens it reads out (the
state token is still a key there), which saves its state row's query, output
and feed-forward work: its output has one token fewer, so it cannot share
the scan's carry. ``remat=True`` recomputes the scanned bodies' activations
in the backward pass (less memory, one more forward); ``scan_layers=False``
unrolls the same scans into straight-line code. Weights map to and from the
reference's per-layer names in :mod:`geno_lewm_jax.interop`.

``compute_dtype="bfloat16"`` runs every Linear (and attention) in bf16 with
float32 params, float32 LayerNorm outputs, a float32 residual stream, float32
softmax and a float32 readout normalisation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.model.blocks import (
    CrossPair,
    SelfAttentionBlock,
    StateToActionBlock,
    dense,
    gelu,
    layer_norm,
)
from geno_lewm_jax.model.initializers import embedding_normal, zeros
from geno_lewm_jax.model.layer_stack import build_layers, scan_layers
from geno_lewm_jax.model.params import initialized
from geno_lewm_jax.model.validation import check_forward_inputs

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
UPCAST_ABOVE_STEPS = 20
"""Above this many steps the readout MLP runs in float32 whatever the compute dtype (as the reference)."""
NORM_EPS = 1e-12


def _require_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(
            f"{name} must be an integer >= {minimum}, got {value!r}",
            details={"field": name, "value": repr(value), "type": type(value).__name__},
        )


class Predictor(nnx.Module):
    """(state, actions, mask) -> per-step unit-norm next-state predictions."""

    def __init__(
        self,
        *,
        d_state: int = 1024,
        d_action: int = 64,
        d_hidden: int = 768,
        n_heads: int = 8,
        n_cross_layers: int = 6,
        n_self_layers: int = 2,
        ffn_dim: int = 768,
        max_actions: int = 16,
        causal: bool = False,
        compute_dtype: str = "float32",
        remat: bool = False,
        scan_layers: bool = True,
        rngs: nnx.Rngs,
    ) -> None:
        for name, value, minimum in (
            ("d_state", d_state, 1),
            ("d_action", d_action, 1),
            ("d_hidden", d_hidden, 1),
            ("n_heads", n_heads, 1),
            ("n_cross_layers", n_cross_layers, 1),
            ("n_self_layers", n_self_layers, 0),
            ("ffn_dim", ffn_dim, 1),
            ("max_actions", max_actions, 1),
        ):
            _require_int(name, value, minimum=minimum)
        if d_hidden % n_heads:
            raise InputError(
                f"d_hidden={d_hidden} must be divisible by n_heads={n_heads}",
                details={"field": "d_hidden", "d_hidden": d_hidden, "n_heads": n_heads},
            )
        if compute_dtype not in COMPUTE_DTYPES:
            raise InputError(
                f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {compute_dtype!r}",
                details={"field": "compute_dtype", "value": repr(compute_dtype)},
            )
        for name, flag in (("causal", causal), ("remat", remat), ("scan_layers", scan_layers)):
            if not isinstance(flag, bool):
                raise InputError(f"{name} must be a bool, got {flag!r}", details={"field": name})
        self.d_state = d_state
        self.d_action = d_action
        self.d_hidden = d_hidden
        self.max_actions = max_actions
        self.causal = causal
        self.compute_dtype = compute_dtype
        self.remat = remat
        self.scan_layers = scan_layers
        dtype = COMPUTE_DTYPES[compute_dtype]

        self.state_projection = None if d_state == d_hidden else dense(d_state, d_hidden, dtype=dtype, rngs=rngs)
        self.action_projection = dense(d_action, d_hidden, dtype=dtype, rngs=rngs)
        embed = dict(param_dtype=jnp.float32, embedding_init=embedding_normal, rngs=rngs)
        self.token_type_embedding = nnx.Embed(2, d_hidden, **embed)
        self.step_position_embedding = nnx.Embed(max_actions + 1, d_hidden, **embed)
        block = dict(d_hidden=d_hidden, n_heads=n_heads, ffn_dim=ffn_dim, dtype=dtype)
        pairs = n_cross_layers // 2
        self.cross_pairs = build_layers(lambda r: CrossPair(**block, rngs=r), pairs, rngs) if pairs else None
        self.cross_last = StateToActionBlock(**block, rngs=rngs) if n_cross_layers % 2 else None
        # The last self block stands apart (the readout follows it); it draws the keys a loop over all the blocks would.
        make_self = lambda r: SelfAttentionBlock(**block, rngs=r)  # noqa: E731
        self.self_blocks = build_layers(make_self, n_self_layers - 1, rngs) if n_self_layers > 1 else None
        self.last_self_block = make_self(rngs) if n_self_layers else None
        self.readout_hidden = dense(d_hidden, d_hidden, dtype=dtype, rngs=rngs)
        self.readout_norm = layer_norm(d_hidden, rngs)
        self.readout_out = nnx.Linear(
            d_hidden, d_state, dtype=dtype, param_dtype=jnp.float32, kernel_init=zeros, bias_init=zeros, rngs=rngs
        )

    def __call__(self, state: Any, actions: Any, action_mask: Any) -> jax.Array:
        """state [B, S], actions [B, K, A], action_mask bool [B, K] -> float32 [B, K, S]."""
        state, actions, mask = check_forward_inputs(
            state, actions, action_mask, d_state=self.d_state, d_action=self.d_action, max_actions=self.max_actions
        )
        return self.forward(jnp.asarray(state), jnp.asarray(actions), jnp.asarray(mask))

    def forward(self, state: jax.Array, actions: jax.Array, mask: jax.Array) -> jax.Array:
        """The forward pass without input checks (mask must be bool with a True per row)."""
        state = state.astype(jnp.float32)
        steps = mask.shape[1]
        action_tokens = self.action_tokens(actions, jnp.arange(1, steps + 1))
        return self.forward_tokens(state, action_tokens, mask, upcast=steps > UPCAST_ABOVE_STEPS)

    def forward_tokens(self, state: jax.Array, action_tokens: jax.Array, mask: jax.Array, *, upcast: bool) -> jax.Array:
        """The forward pass from float32 state [B, S] and embedded action tokens [B, K, H]."""
        batch, steps = mask.shape
        state_token = self.state_token(state)
        key_mask = mask
        views = self.causal and steps > 1
        if views:
            hidden = action_tokens.shape[-1]
            state_token = jnp.broadcast_to(state_token[:, None], (batch, steps, 1, hidden)).reshape(batch * steps, 1, hidden)
            action_tokens = jnp.broadcast_to(action_tokens[:, None], (batch, steps, steps, hidden))
            action_tokens = action_tokens.reshape(batch * steps, steps, hidden)
            prefix = jnp.arange(steps)[None, :] <= jnp.arange(steps)[:, None]  # [view, step]
            key_mask = (mask[:, None, :] & prefix[None]).reshape(batch * steps, steps)
        scan = dict(remat=self.remat, unroll=not self.scan_layers)
        if self.cross_pairs is not None:
            state_token, action_tokens = scan_layers(
                self.cross_pairs, lambda pair, c: pair(*c, key_mask), (state_token, action_tokens), **scan
            )
        if self.cross_last is not None:
            state_token, action_tokens = self.cross_last(state_token, action_tokens, key_mask)
        tokens = jnp.concatenate([state_token, action_tokens], axis=1)
        token_mask = jnp.concatenate([jnp.ones_like(key_mask[:, :1]), key_mask], axis=1)
        if self.self_blocks is not None:
            tokens = scan_layers(self.self_blocks, lambda block, t: block(t, token_mask), tokens, **scan)
        if self.last_self_block is None:
            outputs = tokens[:, 1:]
        else:  # only the action tokens are read out: the state token is a key here, not updated
            outputs = self.last_self_block(tokens, token_mask, keys_only=1)
        if views:
            diagonal = jnp.arange(steps)
            outputs = outputs.reshape(batch, steps, steps, -1)[:, diagonal, diagonal]
        return self.readout(state, outputs, mask, upcast=upcast)

    def state_token(self, state: jax.Array) -> jax.Array:
        """[B, S] -> [B, 1, H]: projected state plus the state type and position-0 embeddings."""
        projected = state if self.state_projection is None else self.state_projection(state)
        bias = self.token_type_embedding.embedding[0] + self.step_position_embedding.embedding[0]
        return (projected.astype(jnp.float32) + bias)[:, None, :]

    def action_tokens(self, actions: jax.Array, positions: jax.Array) -> jax.Array:
        """[B, K, A] -> [B, K, H]: projected actions plus the action type and step-position embeddings."""
        projected = self.action_projection(actions.astype(jnp.float32)).astype(jnp.float32)
        return projected + self.token_type_embedding.embedding[1] + self.step_position_embedding.embedding[positions]

    def readout(self, state: jax.Array, outputs: jax.Array, mask: jax.Array, *, upcast: bool = False) -> jax.Array:
        """normalize(state + MLP(action token)) per step, zero on padded steps; float32.

        ``upcast`` runs the MLP in float32 under bf16 compute (the reference does so for K > 20).
        """
        if upcast and self.compute_dtype != "float32":
            hidden = _linear_f32(self.readout_hidden, outputs)
            delta = _linear_f32(self.readout_out, self.readout_norm(gelu(hidden)))
        else:
            delta = self.readout_out(self.readout_norm(gelu(self.readout_hidden(outputs))))
        x = state[:, None, :] + delta.astype(jnp.float32)
        # sqrt(max(|x|^2, eps^2)) == max(|x|, eps), with a finite gradient at x = 0.
        norm = jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), NORM_EPS**2))
        return jnp.where(mask[:, :, None], x / norm, 0.0)


def _linear_f32(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    return jnp.dot(x.astype(jnp.float32), layer.kernel[...]) + layer.bias[...]


def build_predictor(config: Any, *, seed: int = 0) -> Predictor:
    """The predictor a config describes (reads predictor.* and action.{d_action,max_len}); drawn on the host."""
    p = config.predictor
    return initialized(
        Predictor,
        seed=seed,
        d_state=p.d_state,
        d_action=config.action.d_action,
        d_hidden=p.d_hidden,
        n_heads=p.n_heads,
        n_cross_layers=p.n_layers,
        n_self_layers=p.n_self_layers,
        ffn_dim=p.ffn_dim,
        max_actions=config.action.max_len,
        causal=p.causal,
        compute_dtype=p.compute_dtype,
        remat=p.remat,
        scan_layers=p.scan_layers,
    )
