"""The main job's training loop: dispatch steps without waiting, and sync only where it must.

Each iteration takes the next prepared batch from the Carbon producer and
dispatches the jitted step (:meth:`Trainer.dispatch_step`); the step's
scalars stay on the device. The loop waits for the device only at its
boundaries, where something needs the numbers: a log step, a validation, a
checkpoint, a signal, the end. There it fetches every pending step's scalars
in one transfer (:meth:`Trainer.resolve_steps`), so with ``nan_policy=raise``
a non-finite step is raised at most ``log_every_steps`` steps late, while the
trainer's in-graph halt flag keeps the state from before it.

The parts of the loop are small methods of :class:`TrainingLoop`; the state a
checkpoint carries is one :class:`~geno_lewm_jax.training.run_state.RunState`.
Every phase of an iteration is timed (:mod:`geno_lewm_jax.training.timeline`)
and reported with each ``train.progress`` event.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import jax

from geno_lewm_jax import config as cfg
from geno_lewm_jax.errors import CollapseDetectedError
from geno_lewm_jax.events import ProgressDisplay
from geno_lewm_jax.run_dir import public_path
from geno_lewm_jax.sinks import MetricsFanout
from geno_lewm_jax.training.carbon_batches import BatchProducer, ProducedBatch
from geno_lewm_jax.training.collapse import CollapseCheck
from geno_lewm_jax.training.run_state import RunState
from geno_lewm_jax.training.timeline import LoopTimeline, PhaseTally
from geno_lewm_jax.training.trainer import EvalOutput, PendingStep, Trainer, TrainerStepResult


def collapse_alert_line(step: int, check: CollapseCheck) -> str:
    """One terminal line for a validation's collapse alerts (train.log holds them as events)."""
    tripped = ", ".join(f"{a.criterion} = {a.value:.4g} (threshold {a.threshold:.4g})" for a in check.alerts)
    return f"collapse alert at step {step}: {tripped}; see train.log"


class HeldOutBatch:
    """The validation batch, made on first use (once, by whichever thread asks first).

    Encoding it is Carbon work the first step does not need: the baseline
    evaluation asks for it after step 1 is dispatched, so a cold start does not
    wait for it.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make: Callable[[], Any] | None = make
        self._batch: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._make is not None:
                self._batch, self._make = self._make(), None
            return self._batch


class StepZeroBaseline:
    """The untrained model's validation, evaluated once and recorded before any later one.

    The initial parameters are copied before step 1 (which donates them); their
    evaluation (the same eval program every validation uses) runs on a worker
    thread after step 1 is dispatched, so its compile overlaps the first steps. In
    a multi-process run it runs in line: every process must issue its collectives
    in the same order.
    """

    def __init__(self, trainer: Trainer, val_batch: "HeldOutBatch") -> None:
        self._trainer = trainer
        self._val_batch = val_batch
        self._params: Any = trainer.params_snapshot()
        self._pending: Future | None = None

    def start(self) -> None:
        if self._params is None:
            return
        params, self._params = self._params, None
        if jax.process_count() > 1:
            done: Future = Future()
            done.set_result(self._trainer.eval_step(self._val_batch.get(), params))
            self._pending = done
            return
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline")
        self._pending = worker.submit(lambda: jax.block_until_ready(self._trainer.eval_step(self._val_batch.get(), params)))
        worker.shutdown(wait=False)

    def take(self) -> EvalOutput | None:
        """The baseline evaluation once (starting it now if it never started), then None."""
        self.start()
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None


@dataclasses.dataclass
class Throughput:
    """Tuples per second over whole iterations, leaving out those that compiled a new K bucket."""

    tuples: int = 0
    seconds: float = 0.0
    seen_buckets: set[int] = dataclasses.field(default_factory=set)
    window_tuples: int = 0
    window_start: float = dataclasses.field(default_factory=time.monotonic)

    def add(self, bucket: int, n_tuples: int, seconds: float) -> None:
        if bucket in self.seen_buckets:
            self.tuples += n_tuples
            self.seconds += seconds
        self.seen_buckets.add(bucket)
        self.window_tuples += n_tuples

    def take_window(self) -> float | None:
        """Tuples per second since the last call."""
        now = time.monotonic()
        elapsed, self.window_start = now - self.window_start, now
        rate = self.window_tuples / elapsed if elapsed > 0 else None
        self.window_tuples = 0
        return rate

    def steady(self) -> float | None:
        """Tuples (of every process) per second over the steady iterations."""
        return self.tuples / self.seconds if self.tuples and self.seconds > 0 else None


@dataclasses.dataclass
class LoopParts:
    """What the loop works with, made by the job's setup."""

    config: cfg.Config
    run_dir: Path
    trainer: Trainer
    store: Any  # CheckpointStore
    log: MetricsFanout  # every event goes through it: train.log, the history lists, TensorBoard, W&B
    display: ProgressDisplay
    producer: BatchProducer
    val_batch: HeldOutBatch | None  # None: validation is off
    identity: dict[str, Any]  # run_identity(...): the fixed part of every checkpoint's meta
    stop: Any  # has .signal_name
    stop_after_step: int | None = None
    producer_timeline: PhaseTally | None = None
    cache_counts: Callable[[], tuple[int, int]] | None = None  # (hits, lookups) so far


class TrainingLoop:
    """Trains from ``state`` to ``config.training.max_steps`` (see the module docstring)."""

    def __init__(self, parts: LoopParts, state: RunState, *, started: float) -> None:
        self.parts = parts
        self.config = parts.config
        self.trainer = parts.trainer
        self.state = state
        self.resumed_from = state.step
        self.started = started
        self.timeline = LoopTimeline()
        self.throughput = Throughput()
        self.pending: list[PendingStep] = []
        self.last_result: TrainerStepResult | None = None
        self.first_step_seconds: float | None = None
        self.baseline = StepZeroBaseline(self.trainer, parts.val_batch) if state.step == 0 and parts.val_batch is not None else None
        self.profile = cfg.parse_profile_steps(self.config.observability.profile_steps)
        self._profiling = False
        self._cache_seen = (0, 0)

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> RunState:
        total = self.config.training.max_steps
        iteration_start = time.monotonic()
        while self.state.step < total and self.parts.stop.signal_name is None:
            with self.timeline.phase("producer_wait"):
                produced = self.parts.producer.next()
            self._dispatch(produced)
            now = time.monotonic()
            self.throughput.add(int(produced.batch.action_mask.shape[1]), produced.n_tuples * jax.process_count(), now - iteration_start)
            iteration_start = now
            self._at_boundary()
            if self.state.step == self.parts.stop_after_step:
                break
        self._stop_profile()
        self._flush()
        self.parts.display.finish()
        self._record_baseline()
        stopped = self.parts.stop.signal_name is not None
        if stopped and self.state.step > self.resumed_from and self.parts.store.latest_step() != self.state.step:
            self._save(None)  # a signal with no new step has nothing new to save
        return self.state

    def _dispatch(self, produced: ProducedBatch) -> None:
        step = self.state.step + 1
        self._start_profile(step)
        with self.timeline.phase("dispatch"):
            self.pending.append(self.trainer.dispatch_step(produced.batch, step))
        self.state.step = step
        self.state.cursor = produced.cursor
        self.state.sample_count += produced.n_tuples * jax.process_count()
        if self.baseline is not None and step == 1:
            with self.timeline.phase("validation"):
                self.baseline.start()  # after step 1's dispatch, so its compile does not delay the first step
        if self.profile is not None and step == self.profile[1]:
            self._stop_profile()

    def _at_boundary(self) -> None:
        """Log, validate, checkpoint and stop where the schedule says; nothing else waits on the device."""
        step, training = self.state.step, self.config.training
        last = step == training.max_steps
        log_now = step % training.log_every_steps == 0 or last or step == self.resumed_from + 1
        validate_now = step % training.collapse_log_every_steps == 0 or last
        save_now = (
            step % training.checkpoint_every_steps == 0
            or last
            or self.parts.stop.signal_name is not None
            or step == self.parts.stop_after_step
        )
        if not (log_now or validate_now or save_now):
            return
        self.parts.store.check()  # a background save that failed stops the run here (CheckpointSaveError)
        self._flush()
        if self.first_step_seconds is None:
            self.first_step_seconds = time.monotonic() - self.started
        if log_now:
            self._log_progress()
        check = self._validate() if validate_now else None
        if save_now:
            self._save(self.state.collapse_history[-1]["val_loss"] if check is not None else None)
        if check is not None and training.stop_on_collapse:
            self._stop_on_collapse(check)

    # --- device sync ------------------------------------------------------------------------
    def _flush(self) -> None:
        """Fetch every pending step's scalars (raises NaNLossError for the first non-finite one)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        with self.timeline.phase("device_wait"):
            results = self.trainer.resolve_steps(pending)
        for result in results:
            if result.skipped:
                self.state.nan_skips += 1
                self.parts.log.emit("train.skip_step", step=result.step, loss=result.loss, grad_norm=result.grad_norm)
        self.last_result = results[-1]

    # --- logging ------------------------------------------------------------------------------
    def _log_progress(self) -> None:
        with self.timeline.phase("logging"):
            result = self.last_result
            assert result is not None
            row = {
                **result.to_dict(),
                "lr": self.trainer.learning_rate(result),
                "tuples_per_s": self.throughput.take_window(),
                **self._cache_hit_rate(),
            }
        timing = self.timeline.take()
        with self.timeline.phase("logging"):  # counted in the next interval
            if self.parts.producer_timeline is not None:
                timing.update(self.parts.producer_timeline.take("producer_"))
            row["step_time"] = timing["time_wall"] / max(1, result.step - self._last_logged_step())  # mean per step
            row.update(timing)
            self.parts.log.emit("train.progress", **row)  # appends the row to state.history
            self.parts.display.update(result.step, row)

    def _last_logged_step(self) -> int:
        history = self.state.history
        return int(history[-1]["step"]) if history else self.resumed_from

    def _cache_hit_rate(self) -> dict[str, float]:
        if self.parts.cache_counts is None:
            return {}
        hits, lookups = self.parts.cache_counts()
        seen_hits, seen_lookups = self._cache_seen
        self._cache_seen = (hits, lookups)
        window = lookups - seen_lookups
        return {"cache_hit_rate": (hits - seen_hits) / window if window else float("nan")}

    # --- validation -----------------------------------------------------------------------------
    def _record_baseline(self) -> None:
        if self.baseline is not None:
            out = self.baseline.take()
            if out is not None:
                self._record_validation(0, out)
            self.baseline = None

    def _validate(self) -> CollapseCheck | None:
        if self.parts.val_batch is None:
            return None
        with self.timeline.phase("validation"):
            self._record_baseline()
            return self._record_validation(self.state.step, self.trainer.eval_step(self.parts.val_batch.get()))

    def _record_validation(self, step: int, out: EvalOutput) -> CollapseCheck | None:
        check = self.trainer.check_collapse(out, step, logger=self.parts.log)
        self.state.collapse_baseline = self.trainer.collapse_monitor.initial_pairwise_pred_dist_mean
        val_loss = float(out.loss)
        self.state.note_validation(val_loss, len(check.alerts) if check is not None else 0)
        skill = out.skill.to_dict()  # val_delta_r2, val_cos_skill (and per rollout step for K > 1)
        # With the collapse metrics just emitted, this makes the step's state.collapse_history row.
        self.parts.log.emit(
            "train.validation",
            step=step,
            val_loss=val_loss,
            val_pred_loss=float(out.pred_loss),
            **skill,
            **self.trainer.validation_fields(out),
        )
        self.parts.display.note_skill(skill["val_delta_r2"])
        if check is not None and check.alerts:
            self.parts.display.alert(collapse_alert_line(step, check))
        return check

    def _stop_on_collapse(self, check: CollapseCheck) -> None:
        fatal = [a for a in check.alerts if a.criterion != "kl_reg"]
        if fatal:
            self.parts.store.wait()
            raise CollapseDetectedError(
                f"collapse detected at step {self.state.step}: "
                + ", ".join(f"{a.criterion}={a.value:.4g} (threshold {a.threshold:.4g})" for a in fatal),
                details={"step": self.state.step, "alerts": [a.to_dict() for a in fatal]},
                remediation="Inspect train.log; lower the learning rate or resume from an earlier checkpoint.",
            )

    # --- checkpoints --------------------------------------------------------------------------
    def _save(self, val_loss: float | None) -> None:
        self._flush()  # a checkpoint never holds a state past an unreported non-finite step
        self._record_baseline()  # the checkpoint carries the baseline
        with self.timeline.phase("checkpoint"):
            meta = {**self.parts.identity, **self.state.to_meta()}
            store = self.parts.store

            def committed(step: int) -> None:  # logged only once durable: a failed save is never reported
                path = public_path(store.directory / str(step), root=self.parts.run_dir)
                self.parts.log.emit("train.checkpoint", step=step, path=path)

            store.save(self.state.step, self.trainer.state, meta, validation_loss=val_loss, on_commit=committed)

    # --- profiling ----------------------------------------------------------------------------
    def _start_profile(self, step: int) -> None:
        if self.profile is not None and step == self.profile[0] and not self._profiling and self.parts.log.enabled:
            jax.profiler.start_trace(str(self.parts.run_dir / "profile"))
            self._profiling = True

    def _stop_profile(self) -> None:
        if self._profiling:
            self._flush()  # the trace holds the device work of the traced steps
            jax.profiler.stop_trace()
            self._profiling = False

    # --- what the summaries need --------------------------------------------------------------
    def measured(self) -> dict[str, Any]:
        return {
            "train_loss": self.last_result.loss if self.last_result is not None else None,
            "tuples_per_second": self.throughput.steady(),
            "first_step_seconds": self.first_step_seconds,
        }


__all__ = ["LoopParts", "StepZeroBaseline", "TrainingLoop", "collapse_alert_line"]
