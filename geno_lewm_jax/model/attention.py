"""Multi-head attention with separate q/k/v projections.

torch packs Wq, Wk, Wv into one (3d, d) ``in_proj_weight``; keeping three
nnx.Linear layers here lets each take the compute dtype and its own
initialiser, and ``geno_lewm_jax.interop`` packs/unpacks them in q, k, v order.
The score/softmax part is ``jax.nn.dot_product_attention``: scale
1/sqrt(head_dim), masked logits set to a large finite negative (a fully masked
row gives finite garbage rather than NaN), softmax in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from geno_lewm_jax.model.initializers import Initializer, zeros


class Attention(nnx.Module):
    """Attention of ``queries`` over ``memory`` (keys and values share the memory input)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        qkv_init: Initializer,
        out_init: Initializer,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        self.n_heads = n_heads

        def linear(init: Initializer) -> nnx.Linear:
            return nnx.Linear(
                d_model, d_model, dtype=dtype, param_dtype=jnp.float32, kernel_init=init, bias_init=zeros, rngs=rngs
            )

        self.query = linear(qkv_init)
        self.key = linear(qkv_init)
        self.value = linear(qkv_init)
        self.out = linear(out_init)

    def __call__(self, queries: jax.Array, memory: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """queries [N, T, d], memory [N, S, d], mask bool [N, T, S] (True = may attend) -> [N, T, d]."""
        if memory.shape[-2] == 1:
            # One key (a state token reading K = 1 actions): the softmax over it is exactly 1, masked
            # or not, so every query reads that key's value, and the query and key projections get
            # gradients of exactly 0. Skipping them changes no bit of the output or of any gradient.
            values = self.value(memory)
            return self.out(jnp.broadcast_to(values, (*queries.shape[:-1], values.shape[-1])))

        def heads(x: jax.Array) -> jax.Array:
            return x.reshape(*x.shape[:-1], self.n_heads, x.shape[-1] // self.n_heads)

        q, k, v = heads(self.query(queries)), heads(self.key(memory)), heads(self.value(memory))
        attended = jax.nn.dot_product_attention(q, k, v, mask=None if mask is None else mask[:, None, :, :])
        return self.out(attended.reshape(*attended.shape[:-2], -1))
