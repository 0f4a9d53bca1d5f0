"""Parameter bookkeeping shared by the CLI and the trainer."""

from __future__ import annotations

import jax
from flax import nnx


def count_params(module: nnx.Module) -> int:
    """Number of trainable scalars (every nnx.Param, padding rows included, as torch counts them)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))
