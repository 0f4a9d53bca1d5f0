"""Parameter bookkeeping shared by the CLI and the trainer, and the host-side initialisation."""

from __future__ import annotations

from typing import Any, TypeVar

import jax
from flax import nnx

M = TypeVar("M", bound=nnx.Module)


def count_params(module: nnx.Module) -> int:
    """Number of trainable scalars (every nnx.Param, padding rows included, as torch counts them)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


def abstract_module(module: M) -> M:
    """``module`` with a ShapeDtypeStruct for each array: what ``nnx.eval_shape`` of its build gives, without a build."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))


def _default_device() -> jax.Device:
    chosen = jax.config.jax_default_device
    if isinstance(chosen, str):  # a platform name
        return jax.local_devices(backend=chosen)[0]
    return chosen if chosen is not None else jax.local_devices()[0]


def _host_device() -> jax.Device | None:
    """JAX's CPU device, where there is one (``JAX_PLATFORMS`` may leave it out)."""
    try:
        return jax.local_devices(backend="cpu")[0]
    except RuntimeError:
        return None


def initialized(module_type: type[M], *, seed: int, **settings: Any) -> M:
    """``module_type(**settings, rngs=nnx.Rngs(seed))``, built on the host, its arrays then on the default device.

    The initialisers draw with numpy (see ``initializers``), so the build
    compiles nothing per parameter shape; the few jax ops left (the key
    derivations) run on the CPU, where an eager op compiles in milliseconds,
    rather than on an accelerator. The values are those of any other build from
    the same seed: eager, jitted or on another backend. Off the CPU the arrays
    end committed to the default device (one transfer of the whole state).
    """
    target, host = _default_device(), _host_device()
    with jax.default_device(host or target):
        module = module_type(**settings, rngs=nnx.Rngs(seed))
    if host is not None and host != target:
        nnx.update(module, jax.device_put(nnx.state(module), target))
    return module
