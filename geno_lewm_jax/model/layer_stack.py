"""Layers of one type kept as a single module whose variables are stacked on a leading layer axis.

XLA sees a Python loop over N blocks as N copies of the block (N times the
HLO to optimise and, on GPUs, to autotune); a ``jax.lax.scan`` over the
stacked parameters holds the block once (the Flax NNX scan-over-layers
pattern, as MaxText's ``scan_layers``). The layers are
initialised from the very keys a Python loop over them would draw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

M = TypeVar("M", bound=nnx.Module)


def build_layers(make: Callable[[nnx.Rngs], M], count: int, rngs: nnx.Rngs) -> M:
    """``count`` layers made by ``make(rngs)`` one after another, as one module stacked on axis 0.

    The layers are a Python loop over ``make``, so each draws the keys that loop
    draws and ``rngs`` ends where it leaves it. Built eagerly, the values are
    stacked on the host (an eager ``jnp.stack`` would compile per shape).
    """
    layers = [nnx.split(make(rngs)) for _ in range(count)]
    stacked = jax.tree.map(_stack, *(state for _, state in layers))
    return nnx.merge(layers[0][0], stacked)


def _stack(*values: jax.Array) -> jax.Array:
    if any(isinstance(v, jax.core.Tracer) for v in values):
        return jnp.stack(values)
    return jax.device_put(np.stack(values))


def layer_count(stacked: nnx.Module | None) -> int:
    """Layers held by a stacked module (0 for None)."""
    if stacked is None:
        return 0
    return int(np.shape(jax.tree.leaves(nnx.state(stacked))[0])[0])


def take_layers(stacked: M, index: int | slice) -> M:
    """Layer ``index`` (a module of its own) or the layers of a slice (still stacked)."""
    graphdef, state = nnx.split(stacked)
    return nnx.merge(graphdef, jax.tree.map(lambda x: x[index], state))


def scan_layers(
    stacked: M,
    step: Callable[[M, Any], Any],
    carry: Any,
    *,
    remat: bool = False,
    unroll: bool = False,
) -> Any:
    """``carry <- step(layer, carry)`` for each layer in order, as one ``jax.lax.scan``.

    ``remat`` recomputes each layer's activations in the backward pass
    (``jax.checkpoint`` of the body: only the carries between layers are kept),
    trading a second forward for memory at long K or large batch. ``unroll``
    lays the layers out one after another in the program (what a Python loop
    compiles to) instead of a loop.
    """
    graphdef, state = nnx.split(stacked)

    def body(carry: Any, layer_state: Any) -> tuple[Any, None]:
        return step(nnx.merge(graphdef, layer_state), carry), None

    if remat:
        body = jax.checkpoint(body, prevent_cse=False)  # the loop already keeps XLA from merging recomputation
    carry, _ = jax.lax.scan(body, carry, state, unroll=unroll)
    return carry
