"""``SweepTrainer``: every variant of a ``--sweep`` in one jitted, vmapped step.

The parameters and optimizer state of V variants are stacked along a leading
variant axis; one batch (one Carbon encoding) feeds them all. The gradient,
update and eval programs are the single-run :class:`Trainer`'s, mapped with
``jax.vmap`` over that axis (named :data:`VARIANT_AXIS`), so a variant computes
exactly what a single run with its settings computes:

* ``seed``: each variant starts from the modules built from its own seed
  (the job builds them; :meth:`SweepTrainer.initialize` stacks them);
* ``optimizer.lr`` and ``optimizer.warmup_steps``: the per-variant learning
  rate of each step is computed on the host, as a single run does, and
  injected as a [V] array;
* ``optimizer.weight_decay`` / ``grad_clip`` and the loss weights: constants of
  the program, one per variant, picked inside the vmapped step by the
  variant's index (``lax.axis_index``). Settings not swept stay the Python
  constants a single run compiles.

The trainer keeps the single-run interface the main job's loop uses
(``prepare``, ``dispatch_step``, ``resolve_steps``, ``eval_step``,
``check_collapse``, ``state``/``restore_state``): a step's result and a
validation's losses report the mean over variants under the usual names, and
every figure of each variant (collapse metrics included) under ``name/v<i>``
(:func:`~geno_lewm_jax.sweep.spec.variant_key`).

Under ``nan_policy=raise`` a non-finite variant halts every variant's update
(the stack then holds the state from before that step, as a single run does)
and the error names the variant; under ``skip`` only that variant skips (a
second update program, which selects per variant and so copies the stack).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from geno_lewm_jax.errors import InputError, NaNLossError
from geno_lewm_jax.objective import ObjectiveSettings
from geno_lewm_jax.sweep.spec import SweepSpec, sweep_spec, variant_key
from geno_lewm_jax.training.collapse import (
    ALERT_EVENT,
    CollapseAlert,
    CollapseCheck,
    CollapseMonitor,
    EventSink,
    kl_reg_is_informative,
)
from geno_lewm_jax.training.optimizer import build_adamw_optimizer, with_learning_rate
from geno_lewm_jax.training.schedule import wsd_lr_multiplier
from geno_lewm_jax.training.skill import SkillMetrics
from geno_lewm_jax.training.trainer import (
    _FINITE,
    _GRAD_NORM,
    _RESULT_FIELDS,
    _UPDATE,
    EvalOutput,
    Trainer,
    TrainerStepResult,
    _split_modules,
)

VARIANT_AXIS = "variant"
_UPDATE_EACH = "update-each"
"""The compile key of the update that lets each variant skip alone (``nan_policy=skip``)."""
_SHARED = ("step", "action_count", "skipped")
"""Step-result fields that are not averaged: the step and its batch are every variant's; ``skipped`` is any."""
_REPORTED = tuple(f.name for f in dataclasses.fields(TrainerStepResult) if f.name not in _SHARED)
"""Step scalars reported per variant (and averaged over variants under their plain names)."""


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


@dataclasses.dataclass(frozen=True)
class SweepStepResult:
    """One step of every variant; the plain fields the loop reads are over all variants."""

    step: int
    variants: tuple[TrainerStepResult, ...]
    lrs: tuple[float, ...]

    @property
    def loss(self) -> float:
        return _mean([r.loss for r in self.variants])

    @property
    def grad_norm(self) -> float:
        return _mean([r.grad_norm for r in self.variants])

    @property
    def lr_multiplier(self) -> float:
        return _mean([r.lr_multiplier for r in self.variants])

    @property
    def skipped(self) -> bool:
        """True when any variant skipped its update (each variant's flag is in :meth:`to_dict`)."""
        return any(r.skipped for r in self.variants)

    def to_dict(self) -> dict[str, Any]:
        """Means over variants under the single-run names, then every variant's own values."""
        row: dict[str, Any] = {"step": self.step}
        row.update({name: _mean([getattr(r, name) for r in self.variants]) for name in _REPORTED})
        row.update(action_count=self.variants[0].action_count, skipped=self.skipped)
        for i, (result, lr) in enumerate(zip(self.variants, self.lrs)):
            row.update({variant_key(name, i): getattr(result, name) for name in (*_REPORTED, "skipped")})
            row[variant_key("lr", i)] = lr
        return row


@functools.partial(jax.tree_util.register_dataclass, data_fields=["stacked"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class SweepEvalOutput:
    """Every variant's :class:`EvalOutput`, stacked; ``loss``/``pred_loss``/``kl_reg`` are the means."""

    stacked: EvalOutput

    def variant(self, index: int) -> EvalOutput:
        return jax.tree.map(lambda x: x[index], self.stacked)

    @property
    def loss(self) -> jax.Array:
        return jnp.mean(self.stacked.loss)

    @property
    def pred_loss(self) -> jax.Array:
        return jnp.mean(self.stacked.pred_loss)

    @property
    def kl_reg(self) -> jax.Array:
        return jnp.mean(self.stacked.kl_reg)

    @property
    def skill(self) -> SkillMetrics:
        """The variants' mean skill (each variant's own is in :meth:`SweepTrainer.validation_fields`)."""
        s = self.stacked.skill
        mean = functools.partial(jnp.mean, axis=0)
        return SkillMetrics(mean(s.delta_r2), mean(s.cos_skill), mean(s.delta_r2_k), mean(s.cos_skill_k), s.pairs_k[0])


@dataclasses.dataclass(frozen=True, slots=True)
class VariantAlert(CollapseAlert):
    """A collapse alert of one variant."""

    variant: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**CollapseAlert.to_dict(self), "variant": self.variant}


@dataclasses.dataclass(frozen=True)
class SweepMetrics:
    """A validation's collapse metrics, each variant's under ``name/v<i>``."""

    values: dict[str, float]

    def to_dict(self) -> dict[str, float]:
        return dict(self.values)


@dataclasses.dataclass(frozen=True)
class SweepCheck:
    """Every variant's validation and collapse check (what ``check_collapse`` returns for a sweep)."""

    checks: tuple[CollapseCheck, ...]
    metrics: SweepMetrics
    alerts: tuple[VariantAlert, ...]

    @property
    def tripped(self) -> bool:
        return bool(self.alerts)


class MonitorStack:
    """One collapse monitor per variant, behind the single monitor's interface the loop uses."""

    def __init__(self, monitors: Sequence[CollapseMonitor]) -> None:
        self.monitors = tuple(monitors)

    def should_log(self, step: int) -> bool:
        return self.monitors[0].should_log(step)

    @property
    def initial_pairwise_pred_dist_mean(self) -> list[float | None]:
        """Each variant's baseline (a checkpoint's meta records the list)."""
        return [m.initial_pairwise_pred_dist_mean for m in self.monitors]

    @initial_pairwise_pred_dist_mean.setter
    def initial_pairwise_pred_dist_mean(self, values: Sequence[float | None] | None) -> None:
        values = [None] * len(self.monitors) if values is None else list(values)
        if len(values) != len(self.monitors):
            raise InputError(
                f"{len(values)} collapse baselines for {len(self.monitors)} variants",
                details={"field": "collapse_baseline", "variants": len(self.monitors)},
            )
        for monitor, value in zip(self.monitors, values):
            monitor.initial_pairwise_pred_dist_mean = value


class _VariantSink:
    """One variant's view of the run's event sink: its metrics become ``name/v<i>`` (so the variants'
    metrics of one validation make one row, and curves of their own); its alerts carry ``variant``."""

    def __init__(self, sink: EventSink, index: int) -> None:
        self._sink, self._index = sink, index

    def emit(self, event: str, **fields: Any) -> None:
        if event == ALERT_EVENT:
            self._sink.emit(event, variant=self._index, **fields)
        else:
            self._sink.emit(event, **{k if k == "step" else variant_key(k, self._index): v for k, v in fields.items()})


def stack_trees(trees: Sequence[Any]) -> Any:
    """One pytree whose leaves stack ``trees``' leaves along a new leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


class SweepTrainer(Trainer):
    """A :class:`Trainer` over the stacked variants of ``config.sweep`` (see the module docstring).

    ``predictor`` and ``action_encoder`` give the shapes (abstract modules
    suffice); concrete ones also start every variant from their parameters.
    :meth:`initialize` takes one module pair per variant (each from its own seed).
    """

    def __init__(
        self,
        predictor: nnx.Module,
        action_encoder: nnx.Module,
        config: Any,
        total_steps: int,
        *,
        mesh: jax.sharding.Mesh | None = None,
    ) -> None:
        self.sweep: SweepSpec = sweep_spec(config)
        self.n_variants = len(self.sweep)
        variants = [v.config for v in self.sweep.variants]
        self._base_lrs = [float(c.optimizer.lr) for c in variants]
        self._warmups = [int(c.optimizer.warmup_steps) for c in variants]
        params = _split_modules(predictor, action_encoder)[1]
        super().__init__(predictor, action_encoder, self._variant_optimizer(config, params), config, total_steps, mesh=mesh)
        self._update_each = jax.jit(
            self._update_each_step,
            donate_argnums=(0,),
            in_shardings=(
                self._state_sharding, self._state_sharding[0], self._replicated, self._replicated, self._replicated
            ),
            out_shardings=(self._state_sharding, self._replicated, self._replicated),
        )
        self.collapse_monitor = MonitorStack(  # type: ignore[assignment]
            [
                CollapseMonitor(
                    log_every_steps=c.training.collapse_log_every_steps, kl_reg_informative=kl_reg_is_informative(c)
                )
                for c in variants
            ]
        )

    # --- per-variant values inside the vmapped programs -----------------------------------------
    def _variant_value(self, field: str) -> jax.Array:
        """``field``'s value for the variant being traced (only inside the vmapped programs)."""
        values = np.asarray(self.sweep.values(field), dtype=np.float32)
        return jnp.asarray(values)[jax.lax.axis_index(VARIANT_AXIS)]

    def _variant_optimizer(self, config: Any, params: Any) -> optax.GradientTransformation:
        """AdamW whose swept weight decay / clip are the traced variant's (its state is a single run's)."""
        base = build_adamw_optimizer(config, params)
        swept = self.sweep.swept("optimizer")
        if not swept:
            return base

        def update(updates: Any, state: Any, current: Any = None) -> tuple[Any, Any]:
            overrides = {name: self._variant_value(field) for name, field in swept.items()}
            return build_adamw_optimizer(config, params, **overrides).update(updates, state, current)

        return optax.GradientTransformation(base.init, update)

    def _objective_settings(self) -> ObjectiveSettings:
        swept = self.sweep.swept("objective")
        if not swept:
            return self.settings
        return dataclasses.replace(self.settings, **{name: self._variant_value(f) for name, f in swept.items()})

    # --- state: stacked along the variant axis --------------------------------------------------
    def _abstract_state(self, params: Any, opt_state: Any) -> tuple[Any, Any]:
        n = self.n_variants
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *np.shape(x)), x.dtype), (params, opt_state))

    def _place_fresh(self, params: Any, rest: Any) -> None:
        self._place_variants([params] * self.n_variants, rest)

    def _place_variants(self, params: Sequence[Any], rest: Any) -> None:
        """Stack the variants' parameters and give each a fresh optimizer state (AdamW step 0)."""
        stacked = jax.jit(stack_trees, out_shardings=self._state_sharding[0])(list(params))
        init = jax.vmap(self._init_variant, axis_name=VARIANT_AXIS)
        self._params = stacked
        self._opt_state = jax.jit(init, out_shardings=self._state_sharding[1])(stacked)
        self._rest = jax.device_put(rest, self._replicated)
        self._halt = None

    def _init_variant(self, params: Any) -> Any:
        """A variant's fresh optimizer state, carrying its own peak learning rate (as its single run's does)."""
        state = self.optimizer.init(params)
        if "optimizer.lr" not in self.sweep.fields:
            return state
        lr = self._variant_value("optimizer.lr")

        def own_lr(s: Any) -> Any:
            if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams:
                hp = {k: (lr.astype(jnp.asarray(v).dtype) if k in ("learning_rate", "initial_lr") else v) for k, v in s.hyperparams.items()}
                return s._replace(hyperparams=hp)
            return s

        return jax.tree.map(own_lr, state, is_leaf=lambda s: hasattr(s, "hyperparams"))

    def initialize(self, predictor: Any, action_encoder: Any) -> None:
        """Start every variant from its own modules: sequences of V predictors and action encoders
        (in variant order), or one pair that every variant starts from."""
        if isinstance(predictor, nnx.Module) and isinstance(action_encoder, nnx.Module):
            predictor, action_encoder = [predictor] * self.n_variants, [action_encoder] * self.n_variants
        predictors, encoders = list(predictor), list(action_encoder)
        if len(predictors) != self.n_variants or len(encoders) != self.n_variants:
            raise InputError(
                f"initialize needs {self.n_variants} predictors and action encoders (one per variant),"
                f" got {len(predictors)} and {len(encoders)}",
                details={"field": "predictor", "variants": self.n_variants},
            )
        params = []
        rest = None
        for p, e in zip(predictors, encoders):
            defs, variant_params, variant_rest = _split_modules(p, e)
            for name, graphdef in defs.items():
                if graphdef != self._defs[name]:
                    raise InputError(
                        f"{name} is not the module this trainer was made for (different structure)",
                        details={"field": name},
                    )
            self._check_leaves(variant_params, self._single_spec(), "params")
            params.append(variant_params)
            rest = variant_rest if rest is None else rest
        self._check_leaves(rest, self._state_spec[1], "rest")
        self._place_variants(params, rest)

    def _single_spec(self) -> Any:
        """One variant's parameter shapes."""
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), self._state_spec[0][0])

    # --- the vmapped programs -------------------------------------------------------------------
    def _gradient_step(self, params: Any, rest: Any, batch: Any, *shared: Any) -> tuple[Any, jax.Array]:
        """Every variant's gradients on the one batch (``shared``: further inputs all variants read)."""
        single = functools.partial(Trainer._gradient_step, self)
        in_axes = (0, None, None, *(None,) * len(shared))
        return jax.vmap(single, in_axes=in_axes, axis_name=VARIANT_AXIS)(params, rest, batch, *shared)

    def _update_step(
        self, state: Any, grads: Any, lr: jax.Array, scalars: jax.Array, halt: jax.Array
    ) -> tuple[Any, jax.Array, jax.Array]:
        """Every variant's update, or none: one non-finite variant halts the stack (``nan_policy=raise``).

        The stack is updated in place by one branch of a ``cond`` whose other branch keeps
        it (only the injected learning rates change, as in a single run's skipped step).
        Under ``nan_policy=skip`` the trainer runs :meth:`_update_each_step` instead.
        """
        halt_on_nonfinite = halt[1]
        every_finite = jnp.all(scalars[:, _FINITE] == 1.0)
        halted = halt[0] | (~every_finite & halt_on_nonfinite)

        def update_all(operands: Any) -> tuple[Any, jax.Array]:
            (params, opt_state), grads, lr, scalars = operands

            def one(p: Any, s: Any, g: Any, variant_lr: jax.Array, row: jax.Array) -> tuple[Any, jax.Array]:
                p, s, grad_norm = self._apply_update(p, with_learning_rate(s, variant_lr), g, row[_GRAD_NORM])
                return (p, s), row.at[_GRAD_NORM].set(grad_norm)

            return jax.vmap(one, axis_name=VARIANT_AXIS)(params, opt_state, grads, lr, scalars)

        def keep_all(operands: Any) -> tuple[Any, jax.Array]:
            (params, opt_state), _, lr, scalars = operands
            return (params, jax.vmap(with_learning_rate)(opt_state, lr)), scalars

        # A select inside the skipped branch would make XLA copy the whole stack before the
        # cond on every step; a branch that keeps it lets the update stay in place.
        new_state, new_scalars = jax.lax.cond(
            every_finite & ~halted, update_all, keep_all, (state, grads, lr, scalars)
        )
        return new_state, new_scalars, jnp.stack([halted, halt_on_nonfinite])

    def _update_each_step(
        self, state: Any, grads: Any, lr: jax.Array, scalars: jax.Array, halt: jax.Array
    ) -> tuple[Any, jax.Array, jax.Array]:
        """``nan_policy=skip``: each variant applies its update or skips it alone (a select over the stack)."""
        flags = jnp.broadcast_to(halt, (self.n_variants, 2))
        single = functools.partial(Trainer._update_step, self)
        new_state, new_scalars, new_flags = jax.vmap(single, axis_name=VARIANT_AXIS)(state, grads, lr, scalars, flags)
        return new_state, new_scalars, jnp.stack([jnp.any(new_flags[:, 0]), halt[1]])

    def _eval_step(self, params: Any, rest: Any, batch: Any, *shared: Any) -> EvalOutput:
        single = functools.partial(Trainer._eval_step, self)
        in_axes = (0, None, None, *(None,) * len(shared))
        return jax.vmap(single, in_axes=in_axes, axis_name=VARIANT_AXIS)(params, rest, batch, *shared)

    def _executable(self, key: Any) -> Any:
        if key == _UPDATE and self.nan_policy == "skip":
            key = _UPDATE_EACH  # each variant skips alone
        return super()._executable(key)

    def _lowered(self, key: Any) -> Any:
        if key not in (_UPDATE, _UPDATE_EACH):
            return super()._lowered(key)
        state, _ = self._state_spec
        n = self.n_variants
        lr = jax.ShapeDtypeStruct((n,), jnp.float32, sharding=self._replicated)
        scalars = jax.ShapeDtypeStruct((n, len(_RESULT_FIELDS)), jnp.float32, sharding=self._replicated)
        halt = jax.ShapeDtypeStruct((2,), jnp.bool_, sharding=self._replicated)
        program = self._update if key == _UPDATE else self._update_each
        return program.lower(state, state[0], lr, scalars, halt)

    # --- host side ------------------------------------------------------------------------------
    def _learning_rate(self, step: int) -> tuple[Any, Any]:
        schedule = self.config.optimizer.schedule
        multipliers = tuple(
            wsd_lr_multiplier(step, total_steps=self.total_steps, warmup_steps=w, schedule=schedule) for w in self._warmups
        )
        lrs = np.array([np.float32(base * m) for base, m in zip(self._base_lrs, multipliers)], dtype=np.float32)
        return multipliers, lrs

    def learning_rate(self, result: Any) -> float:
        return _mean(result.lrs)

    def _step_result(self, step: int, lr_multiplier: Any, row: Any) -> SweepStepResult:
        results = []
        for variant, multiplier, variant_row in zip(self.sweep.variants, lr_multiplier, row):
            try:
                results.append(Trainer._step_result(self, step, multiplier, variant_row))
            except NaNLossError as exc:
                raise NaNLossError(
                    f"variant {variant.index} ({variant.label}): {exc.message}",
                    details={**exc.details, "variant": variant.index, "settings": variant.settings},
                    remediation=exc.remediation,
                ) from None
        lrs = tuple(base * m for base, m in zip(self._base_lrs, lr_multiplier))
        return SweepStepResult(step=step, variants=tuple(results), lrs=lrs)

    def eval_step(self, batch: Any, params: Any = None) -> SweepEvalOutput:  # type: ignore[override]
        return SweepEvalOutput(super().eval_step(batch, params))

    def check_collapse(self, out: Any, step: int, *, logger: EventSink | None = None) -> SweepCheck:  # type: ignore[override]
        """Each variant's collapse check; its metrics are logged as ``name/v<i>``, its alerts with ``variant``."""
        checks, alerts = [], []
        for i, monitor in enumerate(self.collapse_monitor.monitors):  # type: ignore[attr-defined]
            variant = out.variant(i)
            width = variant.predictions.shape[-1]
            check = monitor.observe(
                variant.predictions.reshape(-1, width),
                variant.targets.reshape(-1, width),
                kl_reg=variant.kl_reg,
                mask=variant.action_mask.reshape(-1),
                step=step,
                logger=_VariantSink(logger, i) if logger is not None else None,
                force=True,
            )
            checks.append(check)
            alerts.extend(VariantAlert(a.criterion, a.value, a.threshold, variant=i) for a in check.alerts)
        values = {variant_key(name, i): value for i, c in enumerate(checks) for name, value in c.metrics.to_dict().items()}
        self.last_collapse_alerts = tuple(a.to_dict() for a in alerts)
        return SweepCheck(checks=tuple(checks), metrics=SweepMetrics(values), alerts=tuple(alerts))

    def validation_fields(self, out: Any) -> dict[str, Any]:
        """Each variant's validation losses, skill and alert count (of the last :meth:`check_collapse`)."""
        fields: dict[str, Any] = {}
        for i in range(self.n_variants):
            variant = out.variant(i)
            figures = {
                "val_loss": float(variant.loss),
                "val_pred_loss": float(variant.pred_loss),
                **variant.skill.to_dict(),
                "collapse_alerts": sum(a["variant"] == i for a in self.last_collapse_alerts),
            }
            fields.update({variant_key(name, i): value for name, value in figures.items()})
        return fields

    # --- one variant, for export ------------------------------------------------------------------
    def modules(self) -> tuple[nnx.Module, nnx.Module]:
        raise InputError(
            f"a sweep trainer holds {self.n_variants} variants: use variant_modules(i)",
            details={"field": "variant", "variants": self.n_variants},
        )

    def variant_modules(self, index: int) -> tuple[nnx.Module, nnx.Module]:
        """(predictor, action_encoder) holding variant ``index``'s current parameters."""
        if not 0 <= index < self.n_variants:
            raise InputError(
                f"variant {index} does not exist: this sweep has variants 0..{self.n_variants - 1}",
                details={"field": "variant", "value": index, "variants": self.n_variants},
            )
        self._require_state()
        from geno_lewm_jax.sharding import fetch

        host = fetch((self._params, self._rest), self.mesh)
        one = jax.tree.map(lambda x: x[index], host[0])
        return tuple(  # type: ignore[return-value]
            nnx.merge(self._defs[name], one[name], host[1][name]) for name in ("predictor", "action_encoder")
        )


def variant_init_seeds(config: Any) -> list[int]:
    """The predictor init seed of each variant (the action encoder's is one more), as single runs seed them."""
    from geno_lewm_jax.training.trainer import TrainerSeeds

    return [TrainerSeeds.from_base_seed(v.config.seed).predictor for v in sweep_spec(config).variants]


__all__ = [
    "MonitorStack",
    "SweepCheck",
    "SweepEvalOutput",
    "SweepMetrics",
    "SweepStepResult",
    "SweepTrainer",
    "VARIANT_AXIS",
    "VariantAlert",
    "stack_trees",
    "variant_init_seeds",
]
