"""Parameter initialisers matching the reference's two init schemes.

The predictor uses its own scheme (truncated normal with std sqrt(2 / fan_in),
cut at +-2 std with no variance correction; N(0, 0.02^2) embeddings). The action
encoder never overrides torch's defaults, so it gets torch's Linear, Embedding
and MultiheadAttention defaults, reproduced here by distribution.

Random draws use jax.random; constants are made on the host, because built
eagerly each jnp.zeros/ones shape would compile its own small XLA program.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Initializer = jax.nn.initializers.Initializer


def _key_words(key: jax.Array) -> jax.Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def constant(value: float) -> Initializer:
    """Every entry ``value`` (no key bits used)."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        shape = tuple(int(n) for n in shape)
        if isinstance(_key_words(key), jax.core.Tracer):
            return jnp.full(shape, value, dtype)
        return jnp.asarray(np.full(shape, value, dtype=dtype))  # a host array: no per-shape compile

    return init


def truncated_fan_in(fan_in: int) -> Initializer:
    """N(0, 2/fan_in) truncated at +-2 std (absolute bound, std not corrected)."""
    return jax.nn.initializers.truncated_normal(stddev=math.sqrt(2.0 / fan_in), lower=-2.0, upper=2.0)


def uniform(bound: float) -> Initializer:
    """U(-bound, bound)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def torch_linear(fan_in: int) -> Initializer:
    """torch.nn.Linear's default for both weight and bias: U(+-1/sqrt(fan_in))."""
    return uniform(1.0 / math.sqrt(fan_in))


def torch_packed_qkv(d_model: int) -> Initializer:
    """Xavier-uniform over torch's packed (3d, d) in_proj, applied to one (d, d) slice."""
    return uniform(math.sqrt(6.0 / (d_model + 3 * d_model)))


def normal(stddev: float) -> Initializer:
    """N(0, stddev^2), as ``jax.nn.initializers.normal``, with the same bits built eagerly or under jit.

    The draw is kept apart from the scaling: inside a jitted initialiser XLA
    would otherwise fuse the scale into the draw and round some values
    differently (1 ulp), which moves the rounding-level margins of the
    device-equivalence tests.
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype)) * jnp.asarray(stddev, dtype)

    return init


zeros = constant(0.0)
ones = constant(1.0)
embedding_normal = normal(0.02)
standard_normal = normal(1.0)
