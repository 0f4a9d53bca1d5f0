"""AdamW for the predictor and action encoder, as one optax transformation.

The chain, in order, over one params pytree holding both modules:

1. zero the gradient of the action encoder's 6-mer padding row (torch's
   ``padding_idx`` gives that row no gradient, so it stays zero forever);
2. clip by one global L2 norm over everything, torch's way: scale by
   ``min(1, max_norm / (norm + 1e-6))``; the pre-clip norm is kept in the
   state for logging (:func:`optimizer_grad_norm`);
3. AdamW (eps 1e-8, betas and weight decay from the config) with its
   learning rate injected as a hyperparameter, so it can be set per step
   (:func:`set_optimizer_lr`) and read back for logging (:func:`optimizer_lr`).

Weight decay follows the reference's parameter groups: no decay for biases,
anything whose path mentions a norm or an embedding, and any parameter with
fewer than two dimensions; every other parameter (dense kernels) decays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.training.schedule import ScheduleName, wsd_lr_multiplier

ADAM_EPS = 1.0e-8
TORCH_CLIP_EPS = 1.0e-6


def _path_names(path: tuple[Any, ...]) -> tuple[str, ...]:
    names = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            names.append(str(entry.key))
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            if entry.name != "value":  # nnx.Variable payload, not a name
                names.append(entry.name)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            names.append(str(entry.idx))
        else:
            names.append(str(getattr(entry, "key", entry)))
    return tuple(names)


def decays(path: tuple[Any, ...], leaf: Any) -> bool:
    """Whether the parameter at ``path`` is in the reference's weight-decay group."""
    names = [n.lower() for n in _path_names(path)]
    if not names or names[-1] == "bias" or jnp.ndim(leaf) < 2:
        return False
    return not any("norm" in n or "embed" in n for n in names)


def weight_decay_mask(params: Any) -> Any:
    """A bool pytree shaped like ``params``: True where AdamW applies weight decay."""
    return jax.tree_util.tree_map_with_path(decays, params)


class ClipState(NamedTuple):
    """The global gradient norm seen by the last update, before clipping."""

    grad_norm: jax.Array


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
    """``torch.nn.utils.clip_grad_norm_``: scale by min(1, max_norm / (norm + 1e-6)); 0 disables."""

    def init_fn(params: Any) -> ClipState:
        del params
        return ClipState(grad_norm=jnp.zeros([], jnp.float32))

    def update_fn(updates: Any, state: ClipState, params: Any = None) -> tuple[Any, ClipState]:
        del state, params
        norm = optax.global_norm(updates)
        if max_norm > 0:
            scale = jnp.minimum(1.0, max_norm / (norm + TORCH_CLIP_EPS))
            updates = jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)
        return updates, ClipState(grad_norm=norm.astype(jnp.float32))

    return optax.GradientTransformation(init_fn, update_fn)


def mask_frozen_rows(row_mask: Any) -> optax.GradientTransformation:
    """Multiply gradients by ``row_mask`` (a pytree of broadcastable 0/1 factors) to freeze rows."""

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        return jax.tree.map(lambda g, m: g * jnp.asarray(m, g.dtype), updates, row_mask), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def padding_rows(params: Any) -> Any:
    """The frozen-row factors of a params pytree: 0 on the 6-mer padding row, 1 elsewhere."""
    from geno_lewm_jax.model import padding_row_mask

    return padding_row_mask(params)


def build_adamw_optimizer(config: Any, params: Any) -> optax.GradientTransformation:
    """The training optimizer for ``params`` (e.g. ``{"predictor": ..., "action_encoder": ...}``).

    ``params`` fixes the weight-decay mask and the frozen padding row; its
    learning rate starts at ``optimizer.lr`` (the peak) and is set per step.
    """
    opt = config.optimizer
    if opt.name != "adamw":
        raise InputError(
            f"optimizer.name={opt.name!r}: the trainer supports AdamW only",
            details={"field": "optimizer.name", "value": opt.name},
            remediation="Set optimizer.name to adamw.",
        )
    if not jax.tree.leaves(params):
        raise InputError(
            "no trainable predictor/action-encoder parameters found: params holds no arrays", details={"field": "params"}
        )
    decay_mask = weight_decay_mask(params)
    b1, b2, wd = float(opt.beta1), float(opt.beta2), float(opt.weight_decay)

    def scheduled_adamw(learning_rate: float, initial_lr: float) -> optax.GradientTransformation:
        # initial_lr is carried, not used: it is the base that set_optimizer_lr scales (torch's group initial_lr)
        del initial_lr
        return optax.adamw(learning_rate, b1=b1, b2=b2, eps=ADAM_EPS, weight_decay=wd, mask=decay_mask)

    return optax.chain(
        mask_frozen_rows(padding_rows(params)),
        clip_by_global_norm_torch(float(opt.grad_clip)),
        optax.inject_hyperparams(scheduled_adamw)(learning_rate=float(opt.lr), initial_lr=float(opt.lr)),
    )


# --- reading and setting the injected learning rate ------------------------------------------------
def _injected(opt_state: Any) -> Any:
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "hyperparams"))
        if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams
    ]
    if not found:
        raise InputError(
            "optimizer must expose an injected learning_rate: the optimizer state has none",
            details={"field": "opt_state"},
            remediation="Build the optimizer with build_adamw_optimizer (or optax.inject_hyperparams).",
        )
    return found[0]


def optimizer_lr(opt_state: Any) -> jax.Array:
    """The learning rate the next update will use."""
    return _injected(opt_state).hyperparams["learning_rate"]


def optimizer_grad_norm(opt_state: Any) -> jax.Array:
    """The pre-clip global gradient norm of the last update."""
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, ClipState)):
        if isinstance(s, ClipState):
            return s.grad_norm
    raise InputError("optimizer state has no gradient-clip state", details={"field": "opt_state"})


def with_learning_rate(opt_state: Any, lr: Any) -> Any:
    """A copy of ``opt_state`` whose injected learning rate is ``lr`` (traceable)."""

    def swap(s: Any) -> Any:
        if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams:
            hp = dict(s.hyperparams)
            hp["learning_rate"] = jnp.asarray(lr, jnp.asarray(hp["learning_rate"]).dtype)
            return s._replace(hyperparams=hp)
        return s

    return jax.tree.map(swap, opt_state, is_leaf=lambda s: hasattr(s, "hyperparams"))


def set_optimizer_lr(
    opt_state: Any, *, step: int, total_steps: int, warmup_steps: int, schedule: ScheduleName = "wsd"
) -> float:
    """Set the injected learning rate to ``initial_lr * multiplier(step)``; return the multiplier.

    Like the reference (which rewrites the torch param groups), this changes
    ``opt_state`` in place: its ``hyperparams`` dict is mutable.
    """
    multiplier = wsd_lr_multiplier(step, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule)
    state = _injected(opt_state)
    base = state.hyperparams.get("initial_lr", state.hyperparams["learning_rate"])
    state.hyperparams.setdefault("initial_lr", base)
    lr = float(jax.device_get(base)) * multiplier
    old = state.hyperparams["learning_rate"]
    state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.asarray(old).dtype)
    return multiplier


__all__ = [
    "ADAM_EPS",
    "ClipState",
    "build_adamw_optimizer",
    "clip_by_global_norm_torch",
    "decays",
    "mask_frozen_rows",
    "optimizer_grad_norm",
    "optimizer_lr",
    "padding_rows",
    "set_optimizer_lr",
    "weight_decay_mask",
    "with_learning_rate",
]
