"""Parameter initialisers matching the reference's two init schemes, sampled on the host.

The predictor uses its own scheme (truncated normal with std sqrt(2 / fan_in),
cut at +-2 std with no variance correction; N(0, 0.02^2) embeddings). The action
encoder never overrides torch's defaults, so it gets torch's Linear, Embedding
and MultiheadAttention defaults, reproduced here by distribution.

Why numpy: built eagerly, a module's jax.random initialisers compile one small
XLA program per parameter shape, seconds of start-up for the predictor. Here
each initialiser seeds a numpy generator from its JAX key's bits, so values
still follow the ``nnx.Rngs`` seed. Under a JAX transform (``nnx.jit``,
``nnx.eval_shape``) the same numpy sampler runs as a host callback, so a module
gets the same values however it is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Initializer = jax.nn.initializers.Initializer
Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _key_words(key: jax.Array) -> jax.Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def host_initializer(draw: Draw) -> Initializer:
    """An initialiser drawing ``draw(generator, shape)`` from a numpy generator seeded by the key."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        shape = tuple(int(n) for n in shape)

        def sample(words: np.ndarray) -> np.ndarray:
            generator = np.random.default_rng(np.asarray(words, np.uint32).ravel())
            return np.asarray(draw(generator, shape), dtype=dtype)

        words = _key_words(key)
        if isinstance(words, jax.core.Tracer):
            return jax.pure_callback(sample, jax.ShapeDtypeStruct(shape, dtype), words)
        return jnp.asarray(sample(np.asarray(words)))

    return init


def constant(value: float) -> Initializer:
    """Every entry ``value`` (no key bits used)."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        shape = tuple(int(n) for n in shape)
        if isinstance(_key_words(key), jax.core.Tracer):
            return jnp.full(shape, value, dtype)
        return jnp.asarray(np.full(shape, value, dtype=dtype))  # a host array: no per-shape compile

    return init


def _truncated_standard_normal(generator: np.random.Generator, shape: tuple[int, ...], bound: float) -> np.ndarray:
    """N(0, 1) conditioned on |x| <= bound, by redrawing the rejected entries."""
    x = generator.standard_normal(shape)
    rejected = np.abs(x) > bound
    while rejected.any():
        x[rejected] = generator.standard_normal(int(rejected.sum()))
        rejected = np.abs(x) > bound
    return x


def truncated_fan_in(fan_in: int) -> Initializer:
    """N(0, 2/fan_in) truncated at +-2 std (absolute bound, std not corrected)."""
    std = math.sqrt(2.0 / fan_in)
    return host_initializer(lambda g, shape: std * _truncated_standard_normal(g, shape, 2.0))


def normal(stddev: float) -> Initializer:
    """N(0, stddev^2)."""
    return host_initializer(lambda g, shape: stddev * g.standard_normal(shape))


def uniform(bound: float) -> Initializer:
    """U(-bound, bound)."""
    return host_initializer(lambda g, shape: g.uniform(-bound, bound, shape))


def torch_linear(fan_in: int) -> Initializer:
    """torch.nn.Linear's default for both weight and bias: U(+-1/sqrt(fan_in))."""
    return uniform(1.0 / math.sqrt(fan_in))


def torch_packed_qkv(d_model: int) -> Initializer:
    """Xavier-uniform over torch's packed (3d, d) in_proj, applied to one (d, d) slice."""
    return uniform(math.sqrt(6.0 / (d_model + 3 * d_model)))


zeros = constant(0.0)
ones = constant(1.0)
embedding_normal = normal(0.02)
standard_normal = normal(1.0)
