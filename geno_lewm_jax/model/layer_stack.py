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

    Each layer draws exactly the keys it would in a Python loop: layer i's
    stream starts where layers 0..i-1 left it (each parameter takes one key
    from ``rngs.params``, so a layer takes as many keys as it has parameters),
    and ``rngs`` ends where the loop would leave it. A layer may draw from that
    stream only. Built eagerly, the layers are that loop, stacked on the host;
    under a trace they are one vmapped construction (one copy of the layer's
    code for ``nnx.eval_shape`` and ``jax.jit`` to trace).
    """
    if isinstance(rngs.params.key[...], jax.core.Tracer):
        return _vmapped_layers(make, count, rngs.params)
    layers = [nnx.split(make(rngs)) for _ in range(count)]  # the loop itself
    stacked = jax.tree.map(lambda *values: jax.device_put(np.stack(values)), *(state for _, state in layers))
    return nnx.merge(layers[0][0], stacked)


def _vmapped_layers(make: Callable[[nnx.Rngs], M], count: int, stream: nnx.RngStream) -> M:
    """:func:`build_layers` as one vmapped construction; layer i's keys start ``i * draws`` into ``stream``."""
    graphdef, params, _ = nnx.split(nnx.eval_shape(lambda: make(nnx.Rngs(0))), nnx.Param, ...)
    draws = len(jax.tree.leaves(params))  # each parameter takes one key
    key, first = stream.key[...], stream.count[...]

    def layer_state(index: jax.Array) -> nnx.State:
        layer_rngs = nnx.Rngs(params=key)
        layer_rngs.params.count[...] = first + index * draws
        return nnx.state(make(layer_rngs))

    stacked = jax.vmap(layer_state)(jnp.arange(count, dtype=jnp.uint32))
    stream.count[...] = first + count * draws
    return nnx.merge(graphdef, stacked)


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
