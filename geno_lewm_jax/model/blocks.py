"""The predictor's pre-LN transformer blocks (reference layout, reference init).

Three kinds, as in the reference: a state->action cross block (the state token
reads the actions; one LayerNorm shared by query and memory), an
action->state cross block (each action reads the state and the actions up to
itself; separate query and memory norms; padded steps keep their input
values) and a bidirectional self-attention block over all tokens. The
predictor alternates the two cross kinds, so it scans over
:class:`CrossPair` (one of each) to compile a single cross body.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geno_lewm_jax.model.attention import Attention
from geno_lewm_jax.model.initializers import ones, truncated_fan_in, zeros

LN_EPS = 1e-5


def layer_norm(width: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """torch-equivalent LayerNorm: eps 1e-5, two-pass variance, float32 output."""
    return nnx.LayerNorm(
        width, epsilon=LN_EPS, use_fast_variance=False, dtype=jnp.float32, scale_init=ones, bias_init=zeros, rngs=rngs
    )


def dense(fan_in: int, fan_out: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> nnx.Linear:
    """A predictor Linear: truncated-normal kernel, zero bias, float32 params."""
    return nnx.Linear(
        fan_in, fan_out, dtype=dtype, param_dtype=jnp.float32, kernel_init=truncated_fan_in(fan_in), bias_init=zeros, rngs=rngs
    )


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as torch's default."""
    return jax.nn.gelu(x, approximate=False)


class FeedForward(nnx.Module):
    def __init__(self, d_hidden: int, ffn_dim: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> None:
        self.up = dense(d_hidden, ffn_dim, dtype=dtype, rngs=rngs)
        self.down = dense(ffn_dim, d_hidden, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(gelu(self.up(x)))


def _attention(d_hidden: int, n_heads: int, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> Attention:
    init = truncated_fan_in(d_hidden)
    return Attention(d_hidden, n_heads, qkv_init=init, out_init=init, dtype=dtype, rngs=rngs)


class StateToActionBlock(nnx.Module):
    """The state token attends to the valid action tokens; actions pass through."""

    def __init__(self, d_hidden: int, n_heads: int, ffn_dim: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> None:
        self.attn_norm = layer_norm(d_hidden, rngs)
        self.attn = _attention(d_hidden, n_heads, dtype, rngs)
        self.ffn_norm = layer_norm(d_hidden, rngs)
        self.ffn = FeedForward(d_hidden, ffn_dim, dtype=dtype, rngs=rngs)

    def __call__(self, state: jax.Array, actions: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """state [N, 1, H], actions [N, K, H], mask bool [N, K]."""
        normed_state, normed_actions = self.attn_norm(state), self.attn_norm(actions)
        state = state + self.attn(normed_state, normed_actions, mask[:, None, :])
        state = state + self.ffn(self.ffn_norm(state))
        return state, actions


class ActionToStateBlock(nnx.Module):
    """Action k attends to the state token and actions 0..k; padded actions are left as they were."""

    def __init__(self, d_hidden: int, n_heads: int, ffn_dim: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> None:
        self.query_norm = layer_norm(d_hidden, rngs)
        self.memory_norm = layer_norm(d_hidden, rngs)
        self.attn = _attention(d_hidden, n_heads, dtype, rngs)
        self.ffn_norm = layer_norm(d_hidden, rngs)
        self.ffn = FeedForward(d_hidden, ffn_dim, dtype=dtype, rngs=rngs)

    def __call__(self, state: jax.Array, actions: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        steps = actions.shape[1]
        memory = self.memory_norm(jnp.concatenate([state, actions], axis=1))
        # Column 0 is the state; column c >= 1 is action c-1, visible to query rows k >= c-1.
        lower = jnp.arange(steps + 1)[None, :] <= jnp.arange(steps)[:, None] + 1
        memory_valid = jnp.concatenate([jnp.ones_like(mask[:, :1]), mask], axis=1)
        allowed = lower[None, :, :] & memory_valid[:, None, :]
        updated = actions + self.attn(self.query_norm(actions), memory, allowed)
        updated = updated + self.ffn(self.ffn_norm(updated))
        return state, jnp.where(mask[:, :, None], updated, actions)


class SelfAttentionBlock(nnx.Module):
    """Bidirectional attention over [state, actions]; padded tokens are keys for no one."""

    def __init__(self, d_hidden: int, n_heads: int, ffn_dim: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> None:
        self.attn_norm = layer_norm(d_hidden, rngs)
        self.attn = _attention(d_hidden, n_heads, dtype, rngs)
        self.ffn_norm = layer_norm(d_hidden, rngs)
        self.ffn = FeedForward(d_hidden, ffn_dim, dtype=dtype, rngs=rngs)

    def __call__(self, tokens: jax.Array, token_mask: jax.Array, *, keys_only: int = 0) -> jax.Array:
        """tokens [N, T, H], token_mask bool [N, T] -> [N, T - keys_only, H].

        The first ``keys_only`` tokens serve as keys and values but are not
        updated (nor returned): every row's update depends only on its own
        query, so the rows returned are those of the full block.
        """
        normed = self.attn_norm(tokens)
        tokens = tokens[:, keys_only:] + self.attn(normed[:, keys_only:], normed, token_mask[:, None, :])
        return tokens + self.ffn(self.ffn_norm(tokens))


class CrossPair(nnx.Module):
    """A state->action block then an action->state block: the unit the predictor's cross stack repeats."""

    def __init__(self, d_hidden: int, n_heads: int, ffn_dim: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs) -> None:
        self.state_to_action = StateToActionBlock(d_hidden, n_heads, ffn_dim, dtype=dtype, rngs=rngs)
        self.action_to_state = ActionToStateBlock(d_hidden, n_heads, ffn_dim, dtype=dtype, rngs=rngs)

    def __call__(self, state: jax.Array, actions: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.action_to_state(*self.state_to_action(state, actions, mask), mask)
