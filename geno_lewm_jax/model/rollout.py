"""Autoregressive rollout: each step is a one-action forward fed the previous prediction.

Step k computes ``current <- predictor(current, actions[:, k:k+1], ones)[:, 0]``
(the action always sits at step position 1). With a left-aligned mask, an
inactive step keeps ``current`` and outputs zeros. The whole loop is one
jitted ``lax.scan``; the action tokens do not depend on the carried state, so
they are embedded for all steps at once before the scan. The predictor goes
into ``jax.jit`` as a plain pytree (NNX modules are pytrees and nothing is
mutated), which skips ``nnx.jit``'s per-call graph traversal.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from geno_lewm_jax.model.predictor import UPCAST_ABOVE_STEPS, Predictor
from geno_lewm_jax.model.validation import check_rollout_inputs


def rollout(predictor: Predictor, state: Any, actions: Any, action_mask: Any = None) -> jax.Array:
    """state [B, S], actions [B, K, A], optional left-aligned mask [B, K] -> float32 [B, K, S]."""
    state, actions, mask = check_rollout_inputs(
        state,
        actions,
        action_mask,
        d_state=predictor.d_state,
        d_action=predictor.d_action,
        max_actions=predictor.max_actions,
    )
    actions = jnp.asarray(actions)
    mask = jnp.ones(actions.shape[:2], jnp.bool_) if mask is None else jnp.asarray(mask)
    return _rollout(predictor, jnp.asarray(state), actions, mask)


@jax.jit
def _rollout(predictor: Predictor, state: jax.Array, actions: jax.Array, mask: jax.Array) -> jax.Array:
    batch, steps = mask.shape
    upcast = steps > UPCAST_ABOVE_STEPS
    tokens = predictor.action_tokens(actions, jnp.ones((steps,), jnp.int32))
    one = jnp.ones((batch, 1), jnp.bool_)

    def step(current: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        token, active = xs
        prediction = predictor.forward_tokens(current, token[:, None, :], one, upcast=upcast)[:, 0]
        active = active[:, None]
        return jnp.where(active, prediction, current), jnp.where(active, prediction, 0.0)

    _, outputs = jax.lax.scan(step, state.astype(jnp.float32), (tokens.swapaxes(0, 1), mask.T))
    return outputs.swapaxes(0, 1)
