"""The trainer: one jitted, donated, static-shape optimizer step over a ``('data',)`` mesh.

``Trainer(predictor, action_encoder, optimizer, config, total_steps)`` keeps
the trainable parameters of both NNX modules as one pure-dict pytree
``{"predictor": ..., "action_encoder": ...}`` plus the optax state, laid out
on the mesh as ``runtime.param_sharding`` says (replicated on every device, or
FSDP-split over ``data``; see :mod:`geno_lewm_jax.sharding`). ``train_step(batch, step)``:

1. pads the batch's step axis K up to the smallest ``training.k_buckets``
   bucket (capped at ``action.max_len``), so ragged batches reuse one compiled
   step per bucket;
2. computes the learning rate ``optimizer.lr * wsd_lr_multiplier(step)`` on
   the host (step is 1-indexed, as in the reference);
3. runs two jitted programs: the gradients (action encoder and predictor
   forward, the objective of :mod:`geno_lewm_jax.objective`, backward) for the
   batch's bucket, split over ``data``, with the step number as an input (the
   ``sigreg`` regulariser draws its directions from the key of (seed, step), so
   a resumed run redraws them exactly); then the optimizer update (padding-row
   mask, torch-style global clip, AdamW with that learning rate), one program
   for every bucket, which donates the state;
4. returns at once with the step's scalars still on the device (:meth:`Trainer.dispatch_step`);
   :meth:`Trainer.resolve_steps` fetches many steps' scalars in one transfer, and
   :meth:`Trainer.train_step` is the two together.

The gradients compile once per (global batch rows, K bucket) and the update once:
on first use, or ahead of time on background threads (:meth:`Trainer.precompile`), which is how the
main job keeps XLA's compile off the path to its first step. The modules may
be abstract (``nnx.eval_shape(lambda: build_predictor(config))``): the step
needs only shapes, so it can compile while the real parameters are still being
made; the trainer then holds no state until :meth:`Trainer.initialize` (fresh
parameters and optimizer state) or :meth:`Trainer.restore_state`.

The KL rows are those the reference sees: every (b, k) with k below the
batch's longest row, padding slots within it included; bucket padding beyond
it is excluded, so padding never changes the numbers.

Non-finite policy (``training.nan_policy``): inside the step, an update whose
loss or gradient norm is not finite is never applied (parameters, moments
and counts stay as they were; only the injected learning rate is the new
step's). With ``"skip"`` the result reports ``skipped=True`` and training goes
on; with ``"raise"`` the fetch of that step's scalars (``train_step``, or
``resolve_steps`` after several ``dispatch_step`` calls) raises
:class:`~geno_lewm_jax.errors.NaNLossError` naming the step, and the trainer
still holds the parameters from before that step: a sticky in-graph flag skips
every update dispatched after it. ``trainer.nan_policy`` is read on the host
at each dispatch and fetch, so it can be changed between steps.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import PartitionSpec

from geno_lewm_jax.errors import InputError, NaNLossError
from geno_lewm_jax.model import EditFeatures
from geno_lewm_jax.model.featurize import PAD_ID
from geno_lewm_jax.objective import ObjectiveSettings, objective, regularizer_key
from geno_lewm_jax.sharding import (
    DATA_AXIS,
    batch_sharding,
    check_batch_divisible,
    check_param_layout,
    data_mesh,
    fetch,
    ordered_sum,
    put_batch,
    put_state,
    reduction_group_count,
    replicated,
    state_shardings,
)
from geno_lewm_jax.training._checks import non_negative_int, positive_int
from geno_lewm_jax.training.collapse import CollapseCheck, CollapseMonitor, EventSink, kl_reg_is_informative
from geno_lewm_jax.training.optimizer import (
    ClipState,
    build_adamw_optimizer,
    optimizer_grad_norm,
    optimizer_lr,
    with_learning_rate,
)
from geno_lewm_jax.training.schedule import wsd_lr_multiplier
from geno_lewm_jax.training.skill import SkillMetrics, compute_skill_metrics

_RESULT_FIELDS = ("loss", "pred_loss", "kl_reg", "action_count", "pred_var_per_dim", "grad_norm", "finite", "reg")
_GRAD_NORM, _FINITE = _RESULT_FIELDS.index("grad_norm"), _RESULT_FIELDS.index("finite")
_UPDATE = "update"
"""The compile key of the optimizer-update program (gradient programs are keyed by (global rows, K))."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrainerSeeds:
    """The run's seeds: data stream = base, model init = base + 1, LoRA (unused) = base + 2."""

    data: int
    predictor: int
    lora: int

    @classmethod
    def from_base_seed(cls, seed: int) -> "TrainerSeeds":
        non_negative_int("seed", seed)
        return cls(data=seed, predictor=seed + 1, lora=seed + 2)

    def to_dict(self) -> dict[str, int]:
        return {"data": self.data, "predictor": self.predictor, "lora": self.lora}


@struct.dataclass
class TrainerBatch:
    """One batch: ``state`` f32 [B, S], ``targets`` f32 [B, K, S] (per step, zero on padding),
    ``features`` (EditFeatures [B, K]) and ``action_mask`` bool [B, K] (left-aligned)."""

    state: Any
    targets: Any
    features: EditFeatures
    action_mask: Any

    @property
    def shape(self) -> tuple[int, int]:
        """(B, K)."""
        return tuple(np.shape(self.action_mask))  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True, slots=True)
class TrainerStepResult:
    """The scalars of one step; ``loss``/``pred_loss``/``kl_reg``/``reg`` are measured before the update.

    ``reg`` is the selected regulariser's value (``training.regularizer``; equal to ``kl_reg`` under lejepa_kl).
    """

    step: int
    lr_multiplier: float
    loss: float
    pred_loss: float
    kl_reg: float
    action_count: int
    pred_var_per_dim: float
    grad_norm: float = float("nan")
    skipped: bool = False
    reg: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class PendingStep:
    """A dispatched step: its scalars are still on the device (``Trainer.resolve_steps`` fetches them)."""

    step: int
    lr_multiplier: float
    scalars: jax.Array


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["predictions", "targets", "action_mask", "loss", "pred_loss", "kl_reg", "skill"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class EvalOutput:
    """What :meth:`Trainer.eval_step` returns: device arrays, K padded to the bucket; ``skill`` scores the
    predictions against copying the batch's source state (see :mod:`geno_lewm_jax.training.skill`)."""

    predictions: jax.Array
    targets: jax.Array
    action_mask: jax.Array
    loss: jax.Array
    pred_loss: jax.Array
    kl_reg: jax.Array
    skill: SkillMetrics


def make_action_mask(rel_edits: Sequence[Sequence[Any]], *, k: int | None = None) -> np.ndarray:
    """bool [B, K]: row b is True on its first len(rel_edits[b]) steps (K = longest row, or ``k``)."""
    if isinstance(rel_edits, (str, bytes)) or not isinstance(rel_edits, Sequence) or not rel_edits:
        raise InputError("rel_edits must contain at least one batch item", details={"field": "rel_edits"})
    lengths = []
    for row, edits in enumerate(rel_edits):
        if isinstance(edits, (str, bytes)) or not isinstance(edits, Sequence):
            raise InputError(
                f"rel_edits entries must be sequences: rel_edits[{row}] is a {type(edits).__name__}",
                details={"field": "rel_edits", "row": row},
            )
        if not edits:
            raise InputError(
                f"each training batch item must include at least one edit: rel_edits[{row}] is empty",
                details={"field": "rel_edits", "row": row},
            )
        lengths.append(len(edits))
    width = max(lengths) if k is None else positive_int("k", k)
    if max(lengths) > width:
        raise InputError(
            f"a row has {max(lengths)} edits, more than k={width}", details={"field": "k", "longest": max(lengths)}
        )
    return np.arange(width)[None, :] < np.asarray(lengths)[:, None]


def bucket_for(k: int, buckets: Sequence[int], max_len: int) -> int:
    """Smallest bucket >= k, capped at ``max_len`` (the predictor's step limit)."""
    if k > max_len:
        raise InputError(
            f"batch has K={k} steps, more than action.max_len={max_len}",
            details={"field": "action.max_len", "k": k, "max_len": max_len},
        )
    for b in buckets:
        if b >= k:
            return min(b, max_len)
    return max_len


def pad_batch(batch: TrainerBatch, k: int) -> TrainerBatch:
    """``batch`` with empty steps appended up to K = k (numpy stays numpy, device arrays stay on device)."""
    _, current = batch.shape
    if k == current:
        return batch

    def grow(a: Any, fill: Any) -> Any:
        widths = [(0, 0), (0, k - current)] + [(0, 0)] * (np.ndim(a) - 2)
        if isinstance(a, jax.Array):
            return jnp.pad(a, widths, constant_values=fill)
        return np.pad(np.asarray(a), widths, constant_values=fill)

    f = batch.features
    return TrainerBatch(
        state=batch.state,
        targets=grow(batch.targets, 0.0),
        features=EditFeatures(
            rel_pos=grow(f.rel_pos, 0),
            edit_type=grow(f.edit_type, 0),
            ref_ids=grow(f.ref_ids, PAD_ID),
            alt_ids=grow(f.alt_ids, PAD_ID),
            mask=grow(f.mask, False),
        ),
        action_mask=grow(batch.action_mask, False),
    )


def _split_modules(predictor: Any, action_encoder: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(graphdefs, params, rest) of both modules by name, params and rest as pure dicts."""
    defs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for name, module in (("predictor", predictor), ("action_encoder", action_encoder)):
        if not isinstance(module, nnx.Module):
            raise InputError(f"{name} must be a flax.nnx.Module, got {type(module).__name__}", details={"field": name})
        defs[name], module_params, module_rest = nnx.split(module, nnx.Param, ...)
        params[name], rest[name] = nnx.to_pure_dict(module_params), nnx.to_pure_dict(module_rest)
    return defs, params, rest


def trainable_params(predictor: nnx.Module, action_encoder: nnx.Module) -> dict[str, Any]:
    """The pure-dict params pytree the trainer and optimizer work on."""
    return _split_modules(predictor, action_encoder)[1]


def _check_batch(batch: Any, d_state: int) -> tuple[int, int]:
    if not isinstance(batch, TrainerBatch):
        raise InputError(f"train_step takes a TrainerBatch, got {type(batch).__name__}", details={"field": "batch"})
    shape = tuple(np.shape(batch.action_mask))
    if len(shape) != 2 or shape[1] < 1:
        raise InputError(f"action_mask must be [B, K>=1], got {shape}", details={"field": "batch.action_mask"})
    b, k = shape
    expected = {"state": (b, d_state), "targets": (b, k, d_state), "features.mask": (b, k)}
    got = {"state": np.shape(batch.state), "targets": np.shape(batch.targets), "features.mask": batch.features.shape}
    for name, want in expected.items():
        if tuple(got[name]) != want:
            raise InputError(
                f"batch.{name} has shape {tuple(got[name])}, expected {want}",
                details={"field": f"batch.{name}", "shape": list(got[name]), "expected": list(want)},
            )
    if jnp.result_type(batch.action_mask) != jnp.bool_:
        raise InputError("batch.action_mask must be bool", details={"field": "batch.action_mask"})
    return b, k


def _spec(x: Any, sharding: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)


def _is_abstract(tree: Any) -> bool:
    return any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(tree))



def _is_clip(node: Any) -> bool:
    return isinstance(node, ClipState)


def _kl_rows(mask: jax.Array) -> jax.Array:
    """Rows the reference's KL flattens: all B x A slots, A = the longest row (bucket padding excluded)."""
    longest = jnp.max(jnp.sum(mask, axis=1))
    return jnp.broadcast_to(jnp.arange(mask.shape[1])[None, :] < longest, mask.shape)


def _pred_var_per_dim(prediction: jax.Array, rows: jax.Array) -> jax.Array:
    """Population variance per dimension over the selected rows, averaged over dimensions."""
    x = prediction.reshape(-1, prediction.shape[-1])
    w = rows.reshape(-1, 1).astype(jnp.float32)
    n = jnp.sum(w)
    centred = (x - jnp.sum(x * w, axis=0) / n) * w
    return jnp.mean(jnp.sum(centred * centred, axis=0) / n)


class Trainer:
    """Owns the training state and the compiled step (see the module docstring)."""

    def __init__(
        self,
        predictor: nnx.Module,
        action_encoder: nnx.Module,
        optimizer: optax.GradientTransformation | None,
        config: Any,
        total_steps: int,
        *,
        mesh: jax.sharding.Mesh | None = None,
    ) -> None:
        self.total_steps = positive_int("total_steps", total_steps)
        self.config = config
        self.settings = ObjectiveSettings.from_config(config)
        self.mesh = mesh if mesh is not None else data_mesh()
        self.nan_policy = config.training.nan_policy
        self.buckets = tuple(config.training.k_buckets)
        self.max_len = int(config.action.max_len)
        self.d_state = int(config.predictor.d_state)
        self.base_lr = float(config.optimizer.lr)
        self._defs, params, rest = _split_modules(predictor, action_encoder)
        self.optimizer = optimizer if optimizer is not None else build_adamw_optimizer(config, params)
        self.param_layout = check_param_layout(config.runtime.param_sharding)
        self.grad_reduction = config.runtime.grad_reduction
        # Only the ordered reduction splits the batch into groups; 0 means XLA's all-reduce.
        self.reduction_groups = (
            reduction_group_count(config.runtime.reduction_groups, self.mesh) if self.grad_reduction == "ordered" else 0
        )
        self._replicated = replicated(self.mesh)
        self._batch_sharding = batch_sharding(self.mesh)
        abstract_opt_state = jax.eval_shape(self.optimizer.init, params)
        optimizer_lr(abstract_opt_state)  # the step sets the learning rate it injects: InputError if there is none
        self._clip_norm = any(isinstance(s, ClipState) for s in jax.tree.leaves(abstract_opt_state, is_leaf=_is_clip))
        abstract_state = self._abstract_state(params, abstract_opt_state)
        # runtime.param_sharding picks only these shardings; the jitted step is the same for every layout.
        self._state_sharding = state_shardings(abstract_state, self.mesh, self.param_layout)
        # What the step is compiled for, fixed here from shapes alone (abstract modules suffice, and
        # background compiles never read arrays that a step donates).
        self._state_spec = (
            jax.tree.map(_spec, abstract_state, self._state_sharding),
            jax.tree.map(lambda x: _spec(x, self._replicated), rest),
        )
        self._params: Any = None
        self._opt_state: Any = None
        self._rest: Any = None
        if not _is_abstract((params, rest)):
            self._place_fresh(params, rest)
        self.collapse_monitor = CollapseMonitor(
            log_every_steps=config.training.collapse_log_every_steps, kl_reg_informative=kl_reg_is_informative(config)
        )
        self.last_collapse_alerts: tuple[dict[str, Any], ...] = ()
        self.trace_count = 0
        # Compiled programs by key: (global rows, K) for the gradients, _UPDATE for the optimizer;
        # made ahead of time (precompile) or on first use.
        self._executables: dict[Any, Future] = {}
        self._compile_lock = threading.Lock()
        self._compile_queue: list[tuple[tuple[int, int], Future]] = []
        self._compiler: threading.Thread | None = None
        self._update_compiler: threading.Thread | None = None
        self._gradients = jax.jit(
            self._gradient_step,
            in_shardings=(self._state_sharding[0], self._replicated, self._batch_sharding, self._replicated),
            out_shardings=(self._state_sharding[0], self._replicated),
        )
        self._update = jax.jit(
            self._update_step,
            donate_argnums=(0,),
            in_shardings=(
                self._state_sharding, self._state_sharding[0], self._replicated, self._replicated, self._replicated
            ),
            out_shardings=(self._state_sharding, self._replicated, self._replicated),
        )
        self._halt: Any = None  # device bool [2] (halted, halt_on_nonfinite); see _update_step
        self._halt_policy = False
        self._eval = jax.jit(
            self._eval_step,
            in_shardings=(self._state_sharding[0], self._replicated, self._batch_sharding),
        )

    def _abstract_state(self, params: Any, opt_state: Any) -> tuple[Any, Any]:
        """The (params, opt_state) shapes the programs hold (a sweep stacks a variant axis onto them)."""
        return params, opt_state

    def _place_fresh(self, params: Any, rest: Any) -> None:
        """Lay out ``params`` and ``rest`` on the mesh and start a fresh optimizer state for them."""
        # put_state keeps every leaf in its own buffer: the step donates this state
        # (cloned layers start from the same arrays, and a 1-device put would keep them shared).
        self._params = put_state(params, self._state_sharding[0])
        # One compiled init, made in place with its layout (eagerly, each moment shape compiles on its own).
        self._opt_state = jax.jit(self.optimizer.init, out_shardings=self._state_sharding[1])(self._params)
        self._rest = jax.device_put(rest, self._replicated)
        self._halt = None

    def initialize(self, predictor: nnx.Module, action_encoder: nnx.Module) -> None:
        """Take the parameters of concrete modules and a fresh optimizer state (AdamW step 0).

        For a trainer made from abstract modules: ``predictor`` and ``action_encoder``
        must have the structure and shapes it was made with; compiled steps stay valid.
        """
        defs, params, rest = _split_modules(predictor, action_encoder)
        for name, graphdef in defs.items():
            if graphdef != self._defs[name]:
                raise InputError(
                    f"{name} is not the module this trainer was made for (different structure)",
                    details={"field": name},
                )
        if _is_abstract((params, rest)):
            raise InputError("initialize needs concrete modules, got abstract ones", details={"field": "predictor"})
        self._check_leaves(params, self._state_spec[0][0], "params")
        self._check_leaves(rest, self._state_spec[1], "rest")
        self._place_fresh(params, rest)

    def _check_leaves(self, tree: Any, spec: Any, field: str) -> None:
        """``tree`` has ``spec``'s structure and every leaf its shape."""
        want, got = jax.tree.structure(spec), jax.tree.structure(tree)
        if want != got:
            raise InputError(
                f"trainer {field} does not match this trainer's parameter/optimizer layout",
                details={"field": field, "expected": str(want)[:500], "got": str(got)[:500]},
            )
        for mine, theirs in zip(jax.tree.leaves(spec), jax.tree.leaves(tree)):
            if np.shape(mine) != np.shape(theirs):
                raise InputError(
                    f"trainer {field} leaf has shape {np.shape(theirs)}, expected {np.shape(mine)}",
                    details={"field": field, "shape": list(np.shape(theirs))},
                )

    def _require_state(self) -> None:
        if self._params is None or self._rest is None:
            raise InputError(
                "this trainer was made from abstract modules and holds no parameters yet",
                details={"field": "predictor"},
                remediation="Call trainer.initialize(predictor, action_encoder) or trainer.restore_state(state) first.",
            )

    # --- the pure step functions ------------------------------------------------------------
    def _predict(self, params: Any, rest: Any, batch: TrainerBatch) -> jax.Array:
        predictor = nnx.merge(self._defs["predictor"], params["predictor"], rest["predictor"])
        encoder = nnx.merge(self._defs["action_encoder"], params["action_encoder"], rest["action_encoder"])
        return predictor(batch.state, encoder(batch.features), batch.action_mask)

    def _objective(self, prediction: jax.Array, targets: jax.Array, mask: jax.Array, step: Any = 0) -> Any:
        """The objective at 1-indexed ``step`` (0 = evaluation); SIGReg's directions come from (seed, step)."""
        key = regularizer_key(self.config.seed, step)  # unused (and compiled away) unless training.regularizer=sigreg
        return objective(
            prediction, targets, self._objective_settings(), mask=mask, kl_row_mask=_kl_rows(mask), key=key
        )

    def _objective_settings(self) -> ObjectiveSettings:
        """The objective's weights as the step traces them (a sweep's are per variant)."""
        return self.settings

    def _forward(self, params: Any, rest: Any, batch: TrainerBatch, step: Any = 0) -> tuple[jax.Array, Any]:
        prediction = self._predict(params, rest, batch)
        parts = self._objective(prediction, batch.targets, batch.action_mask, step)
        return parts.loss, (parts, prediction)

    def _ordered_value_and_grad(self, params: Any, rest: Any, batch: TrainerBatch, step: Any) -> tuple[Any, Any]:
        """What ``value_and_grad(_forward)`` returns, with every sum across the batch in a fixed order.

        The batch is cut into ``reduction_groups`` equal groups of rows, whole
        groups per device. Each device runs the network on its groups one at a
        time, gathers every group's predictions (a copy, no arithmetic), runs the
        objective (it couples the rows: the mean over positions, the KL) on the
        whole batch, pulls its gradient back through its own groups and keeps one
        gradient per group; the groups' gradients are then added in group order
        (:func:`~geno_lewm_jax.sharding.ordered_sum`). A group's arithmetic does
        not depend on which device runs it or how many others share that device,
        so on two or more devices of one process the step gives the same bits for
        any device count that holds whole groups. (Across processes on CPU, XLA
        splits some loops by each process's thread pool: ~1e-7 apart after 20
        steps; a single device rounds the readout's gradient differently: ~3e-7.)
        """
        n = self.mesh.shape[DATA_AXIS]
        per_device = self.reduction_groups // n
        rows = batch.action_mask.shape[0]
        group_rows = rows // self.reduction_groups

        def local(params: Any, rest: Any, batch: TrainerBatch, step: Any) -> tuple[Any, ...]:
            pullbacks, predictions = [], []
            for g in range(per_device):
                group = jax.tree.map(lambda x: x[g * group_rows : (g + 1) * group_rows], batch)
                prediction, pullback = jax.vjp(lambda p, group=group: self._predict(p, rest, group), params)
                predictions.append(prediction)
                pullbacks.append(pullback)
            gather = functools.partial(jax.lax.all_gather, axis_name=DATA_AXIS, tiled=True)
            whole = gather(jnp.concatenate(predictions))
            targets, mask = gather(batch.targets), gather(batch.action_mask)

            def loss_of(prediction: jax.Array) -> tuple[jax.Array, Any]:
                parts = self._objective(prediction, targets, mask, step)
                return parts.loss, parts

            (loss, parts), cotangent = jax.value_and_grad(loss_of, has_aux=True)(whole)
            mine = jax.lax.dynamic_slice_in_dim(cotangent, jax.lax.axis_index(DATA_AXIS) * (rows // n), rows // n)
            per_group = [
                pullback(mine[g * group_rows : (g + 1) * group_rows])[0] for g, pullback in enumerate(pullbacks)
            ]
            grads = jax.tree.map(lambda *leaf: ordered_sum(jnp.stack(leaf), DATA_AXIS), *per_group)
            return loss, parts, whole, grads

        loss, parts, prediction, grads = jax.shard_map(
            local,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(DATA_AXIS), PartitionSpec()),
            out_specs=PartitionSpec(),
            check_vma=False,
        )(params, rest, batch, step)
        grads = jax.lax.with_sharding_constraint(grads, self._state_sharding[0])
        return (loss, (parts, prediction)), grads

    def _gradient_step(self, params: Any, rest: Any, batch: TrainerBatch, step: jax.Array) -> tuple[Any, jax.Array]:
        """Gradients of the objective and the step's scalars (``_RESULT_FIELDS``; grad_norm is the raw norm).

        One program per K bucket; the optimizer update is a separate program
        (:meth:`_update_step`) that does not depend on K, so it compiles once,
        alongside the first bucket, and no later bucket compiles it again.
        """
        self.trace_count += 1  # runs once per compilation, never per call
        if self.reduction_groups:
            (loss, (parts, prediction)), grads = self._ordered_value_and_grad(params, rest, batch, step)
        else:
            (loss, (parts, prediction)), grads = jax.value_and_grad(self._forward, has_aux=True)(params, rest, batch, step)
        raw_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(raw_norm)
        mask = batch.action_mask
        scalars = jnp.stack(
            [
                loss,
                parts.pred_loss,
                parts.kl_reg,
                jnp.sum(mask).astype(jnp.float32),
                _pred_var_per_dim(prediction, _kl_rows(mask)),
                raw_norm,
                finite.astype(jnp.float32),
                parts.reg,
            ]
        )
        return grads, scalars

    def _update_step(
        self, state: Any, grads: Any, lr: jax.Array, scalars: jax.Array, halt: jax.Array
    ) -> tuple[Any, jax.Array, jax.Array]:
        """Apply the optimizer at learning rate ``lr`` unless this step is non-finite or an earlier one halted.

        ``halt`` is bool [2]: (halted, halt_on_nonfinite). Under ``nan_policy=raise``
        the host learns of a non-finite step only when it next fetches scalars, so a
        non-finite step sets the sticky ``halted`` flag and every later update is
        skipped in-graph: the state the host then finds is the one from before that step.
        """
        params, opt_state = state
        raw_norm = scalars[_GRAD_NORM]
        finite = scalars[_FINITE] == 1.0
        halted, halt_on_nonfinite = halt[0], halt[1]

        def apply(operands: Any) -> tuple[Any, Any, jax.Array]:
            return self._apply_update(*operands, raw_norm)

        def skip(operands: Any) -> tuple[Any, Any, jax.Array]:
            p, s, _ = operands
            return p, s, raw_norm

        # A branch, not a select over the whole state: the update stays in place in the donated
        # buffers, where an elementwise where(finite, new, old) costs a copy of every leaf.
        new_params, new_opt, grad_norm = jax.lax.cond(
            finite & ~halted, apply, skip, (params, with_learning_rate(opt_state, lr), grads)
        )
        new_halt = jnp.stack([halted | (~finite & halt_on_nonfinite), halt_on_nonfinite])
        return (new_params, new_opt), scalars.at[_GRAD_NORM].set(grad_norm), new_halt

    def _apply_update(self, params: Any, opt_state: Any, grads: Any, raw_norm: jax.Array) -> tuple[Any, Any, jax.Array]:
        """The optimizer's update applied: (params, opt_state, the gradient norm to report)."""
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        # the clip's norm leaves frozen rows out, as torch does; a custom chain reports the raw norm
        grad_norm = optimizer_grad_norm(opt_state) if self._clip_norm else raw_norm
        return optax.apply_updates(params, updates), opt_state, grad_norm

    def _eval_step(self, params: Any, rest: Any, batch: TrainerBatch) -> EvalOutput:
        _, (parts, prediction) = self._forward(params, rest, batch)
        return EvalOutput(
            predictions=prediction,
            targets=batch.targets,
            action_mask=batch.action_mask,
            loss=parts.loss,
            pred_loss=parts.pred_loss,
            kl_reg=parts.kl_reg,
            skill=compute_skill_metrics(prediction, batch.targets, batch.state, batch.action_mask),
        )

    # --- compiled steps ----------------------------------------------------------------------
    def _abstract_batch(self, global_rows: int, k: int) -> TrainerBatch:
        """Shapes, dtypes and shardings of a batch of ``global_rows`` x K = k."""

        def rows(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
            return jax.ShapeDtypeStruct((global_rows, *shape), dtype, sharding=self._batch_sharding)

        i32 = jnp.int32
        return TrainerBatch(
            state=rows((self.d_state,), jnp.float32),
            targets=rows((k, self.d_state), jnp.float32),
            features=EditFeatures(
                rel_pos=rows((k,), i32), edit_type=rows((k,), i32), ref_ids=rows((k, 4), i32),
                alt_ids=rows((k, 4), i32), mask=rows((k,), jnp.bool_),
            ),
            action_mask=rows((k,), jnp.bool_),
        )

    def _lowered(self, key: Any) -> Any:
        """The lowered program for ``key``: ``_UPDATE`` (the optimizer) or (global rows, K) (the gradients)."""
        state, rest = self._state_spec
        if key == _UPDATE:
            lr = jax.ShapeDtypeStruct((), jnp.float32, sharding=self._replicated)
            scalars = jax.ShapeDtypeStruct((len(_RESULT_FIELDS),), jnp.float32, sharding=self._replicated)
            halt = jax.ShapeDtypeStruct((2,), jnp.bool_, sharding=self._replicated)
            return self._update.lower(state, state[0], lr, scalars, halt)
        step = jax.ShapeDtypeStruct((), jnp.int32, sharding=self._replicated)
        return self._gradients.lower(state[0], rest, self._abstract_batch(*key), step)

    def _compile_into(self, future: Future, key: Any) -> None:
        """Compile the program for ``key`` into a running ``future`` (errors included)."""
        try:
            future.set_result(self._lowered(key).compile())
        except BaseException as exc:  # noqa: BLE001 - re-raised by whoever waits on the future
            future.set_exception(exc)

    def _executable(self, key: Any) -> Any:
        """The compiled program for ``key``: made now, or awaited if a background compile holds it."""
        with self._compile_lock:
            future = self._executables.get(key)
            mine = future is None or future.cancel()  # not compiled and not started: compile it here
            if mine:
                future = self._executables[key] = Future()
                future.set_running_or_notify_cancel()
        if mine:
            self._compile_into(future, key)
        return future.result()

    def precompile(self, batch_rows: int, buckets: Iterable[int] | None = None, *, wait: bool = False) -> None:
        """Compile the step for ``batch_rows`` (this process's rows) at each K bucket on background threads.

        The optimizer update (one program for every bucket) compiles on a thread of its
        own, alongside the first bucket; the buckets' gradient programs compile one
        after another in the order given (default: ``training.k_buckets``, capped at
        ``action.max_len``) while the caller goes on (loading Carbon, encoding batches).
        A step whose bucket is still queued compiles it itself, one already compiling is
        awaited. Compile errors surface at that step (or here, with ``wait``, which
        blocks until these buckets are compiled). :meth:`close` drops what is queued.
        """
        global_rows = positive_int("batch_rows", batch_rows) * jax.process_count()
        self._check_rows(global_rows)
        wanted = tuple(dict.fromkeys(min(int(b), self.max_len) for b in (self.buckets if buckets is None else buckets)))
        with self._compile_lock:
            if _UPDATE not in self._executables:
                future = self._executables[_UPDATE] = Future()
                future.set_running_or_notify_cancel()
                self._update_compiler = threading.Thread(
                    target=self._compile_into, args=(future, _UPDATE), name="update-compiler", daemon=True
                )
                self._update_compiler.start()
            for k in wanted:
                key = (global_rows, k)
                if key not in self._executables:
                    self._executables[key] = Future()
                    self._compile_queue.append((key, self._executables[key]))
            if self._compiler is None or not self._compiler.is_alive():
                self._compiler = threading.Thread(target=self._drain_compile_queue, name="step-compiler", daemon=True)
                self._compiler.start()
        if wait:
            self._executable(_UPDATE)
            for k in wanted:
                self._executable((global_rows, k))

    def _drain_compile_queue(self) -> None:
        while True:
            with self._compile_lock:
                if not self._compile_queue:
                    return
                key, future = self._compile_queue.pop(0)
                if not future.set_running_or_notify_cancel():
                    continue  # a step took this bucket over
            self._compile_into(future, key)

    def close(self) -> None:
        """Drop queued background compiles and wait for those in progress (if any)."""
        with self._compile_lock:
            for key, future in self._compile_queue:
                if future.cancel() and self._executables.get(key) is future:
                    del self._executables[key]
            self._compile_queue.clear()
            compilers = (self._compiler, self._update_compiler)
        for compiler in compilers:
            if compiler is not None:
                compiler.join()

    def step_flops(self, batch: TrainerBatch) -> float:
        """XLA's FLOP count of one step on ``batch``'s shape (gradients plus optimizer update)."""
        prepared = self.prepare(batch)
        total = 0.0
        for key in (tuple(prepared.action_mask.shape), _UPDATE):
            cost = self._executable(key).cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            total += float(cost.get("flops", float("nan")))
        return total

    # --- host side ---------------------------------------------------------------------------
    def _check_rows(self, global_rows: int) -> None:
        """The global batch must split over the devices and, under an ordered reduction, into its groups."""
        check_batch_divisible(global_rows, self.mesh)
        if self.reduction_groups and global_rows % self.reduction_groups:
            raise InputError(
                f"batch size {global_rows} does not split into runtime.reduction_groups={self.reduction_groups} groups",
                details={"field": "data.batch_size", "value": global_rows, "reduction_groups": self.reduction_groups},
                remediation=f"Use a data.batch_size that is a multiple of {self.reduction_groups}.",
            )

    def is_prepared(self, batch: Any) -> bool:
        """True for a batch :meth:`prepare` made: on this trainer's mesh, K already a bucket."""
        mask = batch.action_mask if isinstance(batch, TrainerBatch) else None
        return (
            isinstance(mask, jax.Array)
            and mask.sharding == self._batch_sharding
            and mask.shape[1] == bucket_for(mask.shape[1], self.buckets, self.max_len)
        )

    def prepare(self, batch: TrainerBatch) -> TrainerBatch:
        """Validate, pad K to its bucket and assemble the global batch on the mesh (split over ``data``).

        ``batch`` holds this process's rows: the whole batch in a single-process
        run, ``B / process_count`` rows (its data-stream shard) otherwise.
        """
        b, k = _check_batch(batch, self.d_state)
        self._check_rows(b * jax.process_count())
        padded = pad_batch(batch, bucket_for(k, self.buckets, self.max_len))
        return put_batch(padded, self.mesh)

    def train_step(self, batch: TrainerBatch, step: int) -> TrainerStepResult:
        """One optimizer update for 1-indexed ``step`` (1..total_steps), waiting for its scalars."""
        return self.resolve_steps([self.dispatch_step(batch, step)])[0]

    def dispatch_step(self, batch: TrainerBatch, step: int) -> PendingStep:
        """Queue one optimizer update for 1-indexed ``step`` and return without waiting for the device.

        ``batch`` may already be :meth:`prepare`-d (the main job prepares batches
        ahead, on its producer thread). The returned scalars stay on the device
        until :meth:`resolve_steps` fetches them; until then a non-finite step under
        ``nan_policy=raise`` halts every later update in-graph (see :meth:`_update_step`).
        """
        positive_int("step", step)
        if step > self.total_steps:
            raise InputError(
                f"step {step} is beyond total_steps={self.total_steps}",
                details={"field": "step", "step": step, "total_steps": self.total_steps},
            )
        multiplier, lr = self._learning_rate(step)
        self._require_state()
        prepared = batch if self.is_prepared(batch) else self.prepare(batch)
        gradients = self._executable(tuple(prepared.action_mask.shape))
        update = self._executable(_UPDATE)
        grads, scalars = gradients(self._params, self._rest, prepared, np.int32(step))
        halt = self._halt_flags()
        (self._params, self._opt_state), scalars, self._halt = update(
            (self._params, self._opt_state), grads, lr, scalars, halt
        )
        return PendingStep(step=step, lr_multiplier=multiplier, scalars=scalars)

    def _learning_rate(self, step: int) -> tuple[Any, Any]:
        """(schedule multiplier, float32 learning rate) of 1-indexed ``step``, computed on the host."""
        opt = self.config.optimizer
        multiplier = wsd_lr_multiplier(
            step, total_steps=self.total_steps, warmup_steps=opt.warmup_steps, schedule=opt.schedule
        )
        return multiplier, np.float32(self.base_lr * multiplier)

    def learning_rate(self, result: Any) -> float:
        """The learning rate a resolved step ran at (what ``train.progress`` reports as ``lr``)."""
        return self.base_lr * result.lr_multiplier

    def _halt_flags(self) -> Any:
        """The device halt flags for the next update, with ``nan_policy`` as the host sees it now."""
        raise_now = self.nan_policy == "raise"
        if self._halt is None or raise_now != self._halt_policy:
            halted = bool(jax.device_get(self._halt)[0]) if self._halt is not None else False
            self._halt = jax.device_put(np.array([halted, raise_now]), self._replicated)
            self._halt_policy = raise_now
        return self._halt

    def resolve_steps(self, pending: Sequence[PendingStep]) -> list[TrainerStepResult]:
        """Fetch the scalars of dispatched steps in one transfer, oldest first.

        Under ``nan_policy=raise`` the first non-finite step raises
        :class:`~geno_lewm_jax.errors.NaNLossError` naming it; the trainer then holds
        the parameters from before that step (later updates were skipped in-graph)
        and is ready to train again.
        """
        if not pending:
            return []
        rows = jax.device_get([p.scalars for p in pending])
        return [self._step_result(p.step, p.lr_multiplier, row) for p, row in zip(pending, rows)]

    def _step_result(self, step: int, lr_multiplier: Any, row: Any) -> Any:
        """One fetched step's scalars as a result; NaNLossError for a non-finite step under ``raise``."""
        values = dict(zip(_RESULT_FIELDS, (float(v) for v in row)))
        finite = values["finite"] == 1.0
        if not finite and self.nan_policy == "raise":
            self._halt = None  # the state is the pre-step one: training may go on from it
            raise NaNLossError(
                f"non-finite loss or gradient at step {step} (loss={values['loss']}, grad_norm={values['grad_norm']})",
                details={"step": step, "loss": values["loss"], "grad_norm": values["grad_norm"]},
                remediation="Lower optimizer.lr or check the batch; training.nan_policy=skip skips such steps.",
            )
        return TrainerStepResult(
            step=step,
            lr_multiplier=lr_multiplier,
            loss=values["loss"],
            pred_loss=values["pred_loss"],
            kl_reg=values["kl_reg"],
            action_count=int(values["action_count"]),
            pred_var_per_dim=values["pred_var_per_dim"],
            grad_norm=values["grad_norm"],
            skipped=not finite,
            reg=values["reg"],
        )

    def eval_step(self, batch: TrainerBatch, params: Any = None) -> EvalOutput:
        """Predictions and loss parts for ``batch`` under ``params`` (default: the current ones; no update)."""
        self._require_state()
        return self._eval(self._params if params is None else params, self._rest, self.prepare(batch))

    def validation_fields(self, out: EvalOutput) -> dict[str, Any]:
        """Fields a validation event carries beyond its losses (a sweep's per-variant figures; none here)."""
        del out
        return {}

    def params_snapshot(self) -> Any:
        """A device copy of the current parameters that later steps (which donate theirs) leave intact."""
        self._require_state()
        return jax.device_put(self._params, self._state_sharding[0], may_alias=False)

    def observe_collapse(
        self, batch: TrainerBatch, step: int, *, logger: EventSink | None = None, force: bool = False
    ) -> CollapseCheck | None:
        """Run the collapse monitor on ``batch`` (a validation batch) if ``step`` is scheduled or forced."""
        if not force and not self.collapse_monitor.should_log(step):
            return None
        return self.check_collapse(self.eval_step(batch), step, logger=logger)

    def check_collapse(self, out: EvalOutput, step: int, *, logger: EventSink | None = None) -> CollapseCheck | None:
        """Feed one evaluation (:meth:`eval_step`'s output) to the collapse monitor and keep its alerts."""
        width = out.predictions.shape[-1]
        check = self.collapse_monitor.observe(
            out.predictions.reshape(-1, width),
            out.targets.reshape(-1, width),
            kl_reg=out.kl_reg,
            mask=out.action_mask.reshape(-1),
            step=step,
            logger=logger,
            force=True,
        )
        self.last_collapse_alerts = tuple(a.to_dict() for a in check.alerts) if check is not None else ()
        return check

    # --- state for checkpoints and export -----------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """``{"params": ..., "opt_state": ...}`` (device arrays; a later step donates them)."""
        return {"params": self._params, "opt_state": self._opt_state}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Load a pytree shaped like :attr:`state` (e.g. from a checkpoint) with this trainer's layout."""
        if not isinstance(state, dict) or set(state) != {"params", "opt_state"}:
            raise InputError("trainer state must be a dict with params and opt_state", details={"field": "state"})
        if self._rest is None and jax.tree.leaves(self._state_spec[1]):
            self._require_state()  # non-parameter variables come only from concrete modules (initialize)
        self._check_leaves((state["params"], state["opt_state"]), self._state_spec[0], "state")
        self._params, self._opt_state = put_state((state["params"], state["opt_state"]), self._state_sharding)
        self._halt = None
        if self._rest is None:
            self._rest = self._state_spec[1]  # holds no leaves (checked above): its structure is all there is

    @property
    def params(self) -> dict[str, Any]:
        return self._params

    @property
    def opt_state(self) -> Any:
        return self._opt_state

    def modules(self) -> tuple[nnx.Module, nnx.Module]:
        """(predictor, action_encoder) NNX modules holding the current parameters (for export)."""
        self._require_state()
        host = fetch((self._params, self._rest), self.mesh)  # gathers FSDP shards across processes
        return tuple(  # type: ignore[return-value]
            nnx.merge(self._defs[name], host[0][name], host[1][name]) for name in ("predictor", "action_encoder")
        )


__all__ = [
    "EvalOutput",
    "PendingStep",
    "Trainer",
    "TrainerBatch",
    "TrainerSeeds",
    "TrainerStepResult",
    "bucket_for",
    "make_action_mask",
    "pad_batch",
    "trainable_params",
]
