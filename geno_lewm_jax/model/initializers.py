"""Parameter initialisers matching the reference's two init schemes, drawn on the host.

The predictor uses its own scheme (truncated normal with std sqrt(2 / fan_in),
cut at +-2 std with no variance correction; N(0, 0.02^2) embeddings). The action
encoder never overrides torch's defaults, so it gets torch's Linear, Embedding
and MultiheadAttention defaults, reproduced here by distribution.

Every value is made on the host with numpy: random ones from a Philox stream
keyed by the jax key's words, so a seed gives the same bits on every backend and
device count, and building a model compiles no XLA program per parameter shape
(the jitted threefry-and-erfinv draws they replace cost ~7 CPU-s of compiles per
job start). Under a trace (``nnx.eval_shape``, ``jax.jit``, ``jax.vmap``) the
same draw runs as a ``jax.pure_callback``: the same bits again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Initializer = jax.nn.initializers.Initializer
HostSample = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
"""``(generator, shape) -> float32 array``: one parameter's values from its own stream."""


def _key_words(key: jax.Array) -> jax.Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _generator(words: np.ndarray) -> np.random.Generator:
    """The numpy stream of one jax key: Philox keyed by the key's 32-bit words."""
    key = 0
    for word in np.asarray(words, np.uint32).reshape(-1):
        key = key << 32 | int(word)
    return np.random.Generator(np.random.Philox(key=key))


def host_random(sample: HostSample) -> Initializer:
    """An initialiser whose values ``sample`` draws on the host from the key's own stream.

    Eagerly the draw is plain numpy; given a traced key (also a batch of keys, under
    ``jax.vmap``) it is a ``jax.pure_callback`` running the very same draw per key.
    """

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        shape = tuple(int(n) for n in shape)
        words = _key_words(key)

        def draw(words: np.ndarray) -> np.ndarray:
            words = np.asarray(words)
            out = np.empty(words.shape[:-1] + shape, dtype)
            for index in np.ndindex(words.shape[:-1]):
                out[index] = sample(_generator(words[index]), shape)
            return out

        if isinstance(words, jax.core.Tracer):
            return jax.pure_callback(draw, jax.ShapeDtypeStruct(shape, dtype), words, vmap_method="broadcast_all")
        return jax.device_put(draw(np.asarray(words)))

    return init


def constant(value: float) -> Initializer:
    """Every entry ``value`` (no key bits used)."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        shape = tuple(int(n) for n in shape)
        if isinstance(_key_words(key), jax.core.Tracer):
            return jnp.full(shape, value, dtype)
        return jax.device_put(np.full(shape, value, dtype=dtype))  # a transfer: no per-shape compile

    return init


def _truncated_standard_normal(rng: np.random.Generator, shape: tuple[int, ...], bound: float) -> np.ndarray:
    """N(0, 1) conditioned on [-bound, bound], by redrawing the values outside."""
    values = rng.standard_normal(shape, dtype=np.float32)
    outside = np.abs(values) > bound
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32)
        outside = np.abs(values) > bound
    return values


def truncated_fan_in(fan_in: int) -> Initializer:
    """N(0, 2/fan_in) truncated at +-2 std (absolute bound, std not corrected)."""
    std = np.float32(math.sqrt(2.0 / fan_in))
    return host_random(lambda rng, shape: _truncated_standard_normal(rng, shape, 2.0) * std)


def uniform(bound: float) -> Initializer:
    """U(-bound, bound)."""
    top = np.float32(bound)
    if top > bound:  # float32 rounded the bound up: stay inside the real interval
        top = np.nextafter(top, np.float32(0))
    return host_random(lambda rng, shape: (rng.random(shape, dtype=np.float32) * 2 - 1) * top)


def torch_linear(fan_in: int) -> Initializer:
    """torch.nn.Linear's default for both weight and bias: U(+-1/sqrt(fan_in))."""
    return uniform(1.0 / math.sqrt(fan_in))


def torch_packed_qkv(d_model: int) -> Initializer:
    """Xavier-uniform over torch's packed (3d, d) in_proj, applied to one (d, d) slice."""
    return uniform(math.sqrt(6.0 / (d_model + 3 * d_model)))


def normal(stddev: float, *, zero_row: int | None = None) -> Initializer:
    """N(0, stddev^2); ``zero_row`` of the result is 0 (an embedding's padding row, as torch's padding_idx)."""
    scale = np.float32(stddev)

    def sample(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        values = rng.standard_normal(shape, dtype=np.float32) * scale
        if zero_row is not None:
            values[zero_row] = 0.0
        return values

    return host_random(sample)


zeros = constant(0.0)
ones = constant(1.0)
embedding_normal = normal(0.02)
standard_normal = normal(1.0)
