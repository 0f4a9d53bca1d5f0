"""Parameter bookkeeping shared by the CLI and the trainer, and the one-program initialisation."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import jax
from flax import nnx

M = TypeVar("M", bound=nnx.Module)


def count_params(module: nnx.Module) -> int:
    """Number of trainable scalars (every nnx.Param, padding rows included, as torch counts them)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


@functools.partial(nnx.jit, static_argnums=(0, 1))
def _construct(module_type: type[M], settings: tuple[tuple[str, Any], ...], key: jax.Array) -> M:
    return module_type(**dict(settings), rngs=nnx.Rngs(key))


def initialized(module_type: type[M], *, seed: int, **settings: Any) -> M:
    """``module_type(**settings, rngs=nnx.Rngs(seed))`` with every initialiser in one compiled program.

    Built eagerly, each initialiser of each parameter shape is a small XLA
    program of its own (a few dozen per model); here the whole construction is
    one, compiled once per type and settings (the seed is an argument, not a
    constant) and cached like any other program. The values are those of the
    eager build: the same jax.random draws from the same keys.
    """
    return _construct(module_type, tuple(sorted(settings.items())), jax.random.key(seed))
