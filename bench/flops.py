"""The training step's FLOP count for the benches, from XLA's cost analysis of an unrolled twin.

XLA's cost analysis counts a loop body once whatever its trip count, so the
step the job runs (the predictor's blocks as layer scans) would report a
fraction of its FLOPs. The count comes instead from the same step compiled
with ``predictor.scan_layers`` off (one extra compile per shape, shapes only).
"""

from __future__ import annotations

from typing import Any


def step_flops(config: Any, batch: Any, *, mesh: Any = None) -> float:
    """FLOPs of one training step (gradients plus update) on ``batch``'s shape (per device under SPMD)."""
    from flax import nnx

    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training import Trainer

    unrolled = config.replace({"predictor.scan_layers": False})
    modules = (
        nnx.eval_shape(lambda: build_predictor(unrolled)), nnx.eval_shape(lambda: build_action_encoder(unrolled))
    )
    return Trainer(*modules, None, unrolled, unrolled.training.max_steps, mesh=mesh).step_flops(batch)
