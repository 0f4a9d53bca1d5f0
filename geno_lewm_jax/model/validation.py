"""Input checks for the predictor and the rollout, in the reference's order.

Shape and dtype checks run at trace time (shapes are static under jit), so a
bad call fails before compiling. Checks that need values (0/1 masks, a valid
action per row, left alignment) only run on concrete inputs: under jit they
are skipped and a traced mask must already be bool.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError


def is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def as_array(x: Any, name: str) -> Any:
    """Leave jax/numpy arrays as they are; turn anything else array-like into numpy."""
    if isinstance(x, (jax.Array, np.ndarray)):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the caller's input
        raise InputError(f"{name} must be an array, got {type(x).__name__}", details={"field": name}) from exc


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating)


def _check_same_device(a: Any, b: Any, names: tuple[str, str]) -> None:
    """Committed concrete arrays on different devices cannot be combined."""
    if is_traced(a) or is_traced(b) or not (isinstance(a, jax.Array) and isinstance(b, jax.Array)):
        return
    if a.committed and b.committed and a.sharding.device_set != b.sharding.device_set:
        raise InputError(
            f"{names[0]} and {names[1]} must be on the same device",
            details={f"{names[0]}_device": str(a.sharding.device_set), f"{names[1]}_device": str(b.sharding.device_set)},
        )


def _check_steps(steps: int, max_actions: int, name: str) -> None:
    if steps == 0:
        raise InputError(f"{name} must contain at least one step", details={"field": name})
    if steps > max_actions:
        raise InputError(
            f"{name} has {steps} steps, more than max_actions={max_actions}",
            details={"field": name, "max_actions": max_actions, "actual": steps},
        )


def check_mask_values(mask: Any, name: str = "action_mask", *, left_aligned: bool = False) -> jax.Array:
    """A bool mask: 0/1 values, a True in every row and (optionally) no True after a False."""
    if is_traced(mask):
        if mask.dtype != jnp.bool_:
            raise InputError(
                f"{name} must be a bool array inside jit (got {mask.dtype}); 0/1 values can only be checked eagerly",
                details={"field": name, "dtype": str(mask.dtype)},
            )
        return mask
    host = np.asarray(mask)
    if host.dtype != np.bool_:
        if not np.all((host == 0) | (host == 1)):
            raise InputError(f"{name} must contain boolean or 0/1 values", details={"field": name})
        host = host != 0
    empty = np.flatnonzero(~host.any(axis=1))
    if empty.size:
        raise InputError(
            f"each batch item must include at least one valid action ({name} row {int(empty[0])} is all False)",
            details={"field": name, "row": int(empty[0])},
        )
    if left_aligned:
        late = np.argwhere(host[:, 1:] & ~host[:, :-1])
        if late.size:
            raise InputError(
                f"{name} must be left-aligned: row {int(late[0][0])} has a valid step after padding",
                details={"field": name, "row": int(late[0][0])},
                remediation="Put each row's valid actions first and the padding after them.",
            )
    return jnp.asarray(host) if isinstance(mask, jax.Array) else host


def check_forward_inputs(
    state: Any, actions: Any, mask: Any, *, d_state: int, d_action: int, max_actions: int
) -> tuple[Any, Any, Any]:
    """Predictor inputs, checked in the reference order; returns (state, actions, bool mask)."""
    state, actions, mask = as_array(state, "state"), as_array(actions, "actions"), as_array(mask, "action_mask")
    for name, x, rank, layout in (
        ("state", state, 2, "(batch, d_state)"),
        ("actions", actions, 3, "(batch, steps, d_action)"),
        ("action_mask", mask, 2, "(batch, steps)"),
    ):
        if x.ndim != rank:
            raise InputError(f"{name} must have shape {layout}, got {_shape(x)}", details={"field": name, "shape": _shape(x)})
    if state.shape[0] != actions.shape[0] or _shape(mask) != _shape(actions)[:2]:
        raise InputError(
            "state, actions and action_mask batch/step dimensions must agree",
            details={"state_shape": _shape(state), "actions_shape": _shape(actions), "action_mask_shape": _shape(mask)},
        )
    if state.shape[1] != d_state:
        raise InputError(
            f"state has {state.shape[1]} features, expected d_state={d_state}",
            details={"field": "state", "expected": d_state, "actual": int(state.shape[1])},
        )
    if actions.shape[2] != d_action:
        raise InputError(
            f"actions have {actions.shape[2]} features, expected d_action={d_action}",
            details={"field": "actions", "expected": d_action, "actual": int(actions.shape[2])},
        )
    _check_steps(int(actions.shape[1]), max_actions, "actions")
    _check_same_device(state, actions, ("state", "actions"))
    if not _is_float(state) or not _is_float(actions):
        raise InputError(
            "state and actions must be floating point",
            details={"state_dtype": str(state.dtype), "actions_dtype": str(actions.dtype)},
        )
    return state, actions, check_mask_values(mask)


def check_rollout_inputs(
    state: Any, actions: Any, mask: Any | None, *, d_state: int, d_action: int, max_actions: int
) -> tuple[Any, Any, Any | None]:
    """Rollout inputs in the reference ARPredictor order: actions, then state, then the mask."""
    state, actions = as_array(state, "state"), as_array(actions, "actions")
    if actions.ndim != 3:
        raise InputError(
            f"actions must have shape (batch, steps, d_action), got {_shape(actions)}",
            details={"field": "actions", "shape": _shape(actions)},
        )
    _check_steps(int(actions.shape[1]), max_actions, "actions")
    if actions.shape[2] != d_action:
        raise InputError(
            f"actions have {actions.shape[2]} features, expected d_action={d_action}",
            details={"field": "actions", "expected": d_action, "actual": int(actions.shape[2])},
        )
    if not _is_float(actions):
        raise InputError("actions must be floating point", details={"field": "actions", "dtype": str(actions.dtype)})
    if state.ndim != 2:
        raise InputError(
            f"state must have shape (batch, d_state), got {_shape(state)}", details={"field": "state", "shape": _shape(state)}
        )
    if state.shape[0] != actions.shape[0]:
        raise InputError(
            "state and actions batch dimensions must agree",
            details={"state_batch": int(state.shape[0]), "action_batch": int(actions.shape[0])},
        )
    if state.shape[1] != d_state:
        raise InputError(
            f"state has {state.shape[1]} features, expected d_state={d_state}",
            details={"field": "state", "expected": d_state, "actual": int(state.shape[1])},
        )
    _check_same_device(state, actions, ("state", "actions"))
    if not _is_float(state):
        raise InputError("state must be floating point", details={"field": "state", "dtype": str(state.dtype)})
    if mask is None:
        return state, actions, None
    mask = as_array(mask, "action_mask")
    if mask.ndim != 2 or _shape(mask) != _shape(actions)[:2]:
        raise InputError(
            "action_mask must have shape (batch, steps)",
            details={"field": "action_mask", "expected": _shape(actions)[:2], "actual": _shape(mask)},
        )
    _check_same_device(mask, actions, ("action_mask", "actions"))
    return state, actions, check_mask_values(mask, left_aligned=True)
