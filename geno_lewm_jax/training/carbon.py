"""``run_carbon_training``: the main job, from a validated config to a finished run directory.

Flow: lock the run dir; open the snapshot and the split-aware streams; load
Carbon through the bridge; build the predictor, action encoder and Trainer;
resume from the newest good checkpoint if there is one; then train, with a
background producer encoding the next batches while the jitted step runs.

Run directory::

    training_config.effective.yaml   the effective config (reads back to an equal Config)
    flags.txt                        the same config as a flagfile
    training_preflight_report.json   written by the preflight gate
    dataset_manifest.json            copy of the snapshot manifest
    train.log                        JSONL events (see geno_lewm_jax.events)
    checkpoints/<step>/              Orbax checkpoints (latest N plus best by validation loss)
    metrics.json, training_run.json  strict JSON summaries
    training_curves.png              loss, LR and collapse curves

Only process 0 writes logs, summaries and plots; every process takes part in
checkpoint saves and restores.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from geno_lewm_jax import __version__
from geno_lewm_jax import config as cfg
from geno_lewm_jax.checkpointing import CheckpointStore
from geno_lewm_jax.errors import CheckpointMismatchError, CollapseDetectedError, InputError
from geno_lewm_jax.events import LOG_NAME, EventLog, ProgressDisplay
from geno_lewm_jax.model import build_action_encoder, build_predictor
from geno_lewm_jax.plots import PLOT_NAME, write_training_plot
from geno_lewm_jax.run_dir import RunDirLock, public_path, write_json, write_text_atomic
from geno_lewm_jax.training.carbon_batches import BatchProducer, StateEncoder, encode_training_batch
from geno_lewm_jax.training.collapse import CollapseCheck
from geno_lewm_jax.training.reproducibility import configure_reproducibility
from geno_lewm_jax.training.trainer import Trainer, TrainerSeeds

CHECKPOINT_DIR = "checkpoints"
CONFIG_NAME = "training_config.effective.yaml"
FLAGS_NAME = "flags.txt"
METRICS_NAME = "metrics.json"
RUN_NAME = "training_run.json"
MANIFEST_NAME = "dataset_manifest.json"
META_SCHEMA = "geno_lewm_jax.checkpoint/1"

# Fields that may change between a run and its resume without changing what is trained.
RESUME_FREE_FIELDS = (
    "runtime.run_dir",
    "runtime.resume",
    "runtime.allow_config_change",
    "runtime.param_sharding",
    "runtime.grad_reduction",
    "runtime.reduction_groups",
    "runtime.coordinator_address",
    "runtime.num_processes",
    "runtime.process_id",
    "runtime.bootstrap_missing",
    "runtime.device",
    "training.log_every_steps",
    "training.checkpoint_every_steps",
    "training.keep_checkpoints",
    "training.stop_on_collapse",
    "encoder.feature_cache_dir",
    "encoder.encode_batch_size",
    "data.prefetch_batches",
    "observability.log_level",
    "runtime.compilation_cache_dir",
    "runtime.torch_cpu_threads",
)


@dataclasses.dataclass(frozen=True)
class CarbonTrainingReport:
    """What a finished (or signalled) run reports."""

    run_id: str
    run_dir: Path
    dataset_snapshot_id: str
    steps_requested: int
    steps_completed: int
    resumed_from_step: int
    sample_count: int
    final_loss: float | None
    stopped_by_signal: str | None
    checkpoint_dir: Path
    metrics_path: Path
    log_path: Path
    config_path: Path
    training_metadata_path: Path
    wall_seconds: float
    first_step_seconds: float | None
    tuples_per_second: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


class _StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint at the next step boundary and exits 0."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _config_to_flags(config: cfg.Config) -> str:
    from geno_lewm_jax.flags import flag_name

    lines = ["# Effective flags of this run: python -m geno_lewm_jax.main --flagfile=<this file>"]
    for spec in cfg.iter_fields():
        value = cfg.get_dotted(config, spec.dotted)
        name = flag_name(spec.dotted)
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, tuple):
            lines.append(f"--{name}={','.join(map(str, value))}")
        elif value is not None:
            lines.append(f"--{name}={value}")
    return "\n".join(lines) + "\n"


def _check_resumable(meta: dict[str, Any], config: cfg.Config, run_dir: Path) -> None:
    """Refuse a checkpoint of another run or config unless ``runtime.allow_config_change``."""
    if meta.get("schema") != META_SCHEMA:
        raise CheckpointMismatchError(
            f"{run_dir / CHECKPOINT_DIR} holds checkpoints this version cannot resume (schema {meta.get('schema')!r})",
            details={"path": str(run_dir), "schema": meta.get("schema")},
            remediation="Use a new --run_dir.",
        )
    saved = cfg.from_dict(meta["config"], validate_ranges=False)
    differing = {k: v for k, v in cfg.diff(saved, config).items() if k not in RESUME_FREE_FIELDS}
    if differing and not config.runtime.allow_config_change:
        listed = ", ".join(f"{k} ({v[0]!r} -> {v[1]!r})" for k, v in sorted(differing.items()))
        raise CheckpointMismatchError(
            f"{run_dir} holds checkpoints of a different run or config; differing fields: {listed}",
            details={"path": str(run_dir), "fields": sorted(differing)},
            remediation="Resume with the original settings, pass --allow_config_change, or use a new --run_dir.",
        )


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _buckets_in_order_of_need(stream: Any, cursor: dict[str, Any] | None, lookahead: int) -> list[int]:
    """The K buckets the next ``lookahead`` batches use (from ``cursor``), in order of first use.

    Reading tuples is cheap (no Carbon). Compiling the first step's bucket first is
    what sets the time to the first step; a bucket first needed later compiles then.
    """
    saved = stream.cursor()
    try:
        if cursor is not None:
            stream.restore(cursor)
        seen = [batch.k_bucket for batch in stream.take(max(0, lookahead))]
    finally:
        stream.restore(saved)
    return list(dict.fromkeys(seen))


def _start_trainer(config: cfg.Config, seeds: TrainerSeeds, mesh: Any, buckets: list[int]) -> Future:
    """Compile the step per K bucket from the modules' shapes, while the modules are built; return the Trainer.

    The compile is the longest part of the start, and it needs only shapes, so it
    begins first (on the trainer's compile thread); the random initialisation
    (itself a few dozen small compiles) and loading Carbon overlap it.
    """
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="trainer-build")
    predictor = pool.submit(build_predictor, config, seed=seeds.predictor)
    action_encoder = pool.submit(build_action_encoder, config, seed=seeds.predictor + 1)

    def build() -> Trainer:
        shapes = (
            nnx.eval_shape(lambda: build_predictor(config, seed=seeds.predictor)),
            nnx.eval_shape(lambda: build_action_encoder(config, seed=seeds.predictor + 1)),
        )
        trainer = Trainer(*shapes, None, config, total_steps=config.training.max_steps, mesh=mesh)
        trainer.precompile(config.data.batch_size // jax.process_count(), buckets)
        trainer.initialize(predictor.result(), action_encoder.result())
        return trainer

    future = pool.submit(build)
    pool.shutdown(wait=False)
    return future


def run_carbon_training(
    config: cfg.Config,
    *,
    encoder: StateEncoder | None = None,
    command: str | None = None,
    stop_after_step: int | None = None,
    progress_stream: Any = None,
    preflight_report: Any = None,
    devices: Sequence[Any] | None = None,
) -> CarbonTrainingReport:
    """Train ``config.training.max_steps`` steps into ``config.runtime.run_dir`` (resuming if possible).

    ``encoder`` replaces the bridge's ``CarbonEncoder`` (tests inject one);
    ``preflight_report`` (a passed TrainingPreflightReport) is written into the run
    dir once the run dir's own checkpoints are known to be resumable;
    ``stop_after_step`` ends this process after that step with a checkpoint,
    as a scheduled interruption; ``devices`` trains on those JAX devices only
    (default: every device of every process).
    """
    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.sharding import data_mesh

    started = time.monotonic()
    run_dir = Path(config.runtime.run_dir).expanduser()
    primary = jax.process_index() == 0
    # Process 0 holds the run-dir lock for the whole multi-host run (the directory is shared).
    lock = RunDirLock(run_dir).acquire() if primary else None
    stop = _StopFlag().install()
    producer: BatchProducer | None = None
    trainer_future: Future | None = None
    store: CheckpointStore | None = None
    log: EventLog | None = None
    try:
        store = CheckpointStore(run_dir / CHECKPOINT_DIR, keep_latest=config.training.keep_checkpoints)
        latest = store.latest_step()
        latest_meta = store.read_meta(latest) if latest is not None else None
        if latest_meta is not None:
            _check_resumable(latest_meta, config, run_dir)
        elif config.runtime.resume:
            raise InputError(
                f"--resume was given but {run_dir / CHECKPOINT_DIR} holds no checkpoint",
                details={"field": "runtime.resume", "path": str(run_dir)},
                remediation="Drop --resume to start a fresh run.",
            )

        snapshot = load_snapshot(Path(config.data.dataset_dir).expanduser(), verify="sizes")
        train_stream = TupleStream.from_config(snapshot, config)
        seeds = TrainerSeeds.from_base_seed(config.seed)
        determinism = configure_reproducibility(seed=seeds.predictor, deterministic=config.deterministic)
        mesh = data_mesh(devices)
        done = int(latest_meta["step"]) if latest_meta else 0
        upcoming = _buckets_in_order_of_need(
            train_stream, latest_meta["cursor"] if latest_meta else None, min(64, config.training.max_steps - done)
        )
        trainer_future = _start_trainer(config, seeds, mesh, upcoming)
        if encoder is None:
            from bridge import CarbonEncoder

            encoder = CarbonEncoder.from_config(config, device=None if config.runtime.device == "auto" else config.runtime.device)
            if str(getattr(encoder, "device", "cpu")).startswith("cpu"):
                import os

                import torch

                threads = config.runtime.torch_cpu_threads or max(1, (os.cpu_count() or 2) // 2)
                torch.set_num_threads(threads)  # the other cores run the jitted step
        if encoder.d_state != config.predictor.d_state:
            raise InputError(
                f"predictor.d_state={config.predictor.d_state} but the Carbon encoder's state width is {encoder.d_state}",
                details={"field": "predictor.d_state", "expected": encoder.d_state},
                remediation=f"Set --d_state={encoder.d_state}.",
            )
        encode_fn = None
        if config.encoder.feature_cache_dir:
            from bridge import FeatureCache, encode_with_cache

            cache = FeatureCache(Path(config.encoder.feature_cache_dir).expanduser())
            encode_fn = lambda seqs, loci: encode_with_cache(encoder, cache, seqs, loci)  # noqa: E731

        def encode(tuples: Any, k: int) -> Any:
            return encode_training_batch(
                encoder=encoder, tuples=tuples, k=k, max_window_bp=config.action.max_window_bp, encode_fn=encode_fn
            )

        trainer = trainer_future.result()

        # --- resume --------------------------------------------------------------------------
        step = 0
        history: list[dict[str, Any]] = []
        collapse_history: list[dict[str, Any]] = []
        best_val: float | None = None
        sample_count = 0
        nan_skips = 0
        alert_count = 0
        skipped_checkpoints: tuple[tuple[int, str], ...] = ()
        if latest is not None:
            abstract = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainer.state
            )
            restored = store.restore_latest(abstract)
            assert restored is not None
            skipped_checkpoints = restored.skipped
            meta = restored.meta
            _check_resumable(meta, config, run_dir)
            trainer.restore_state(restored.state)
            train_stream.restore(meta["cursor"])
            step = int(meta["step"])
            history = list(meta.get("history", []))
            collapse_history = list(meta.get("collapse_history", []))
            best_val = meta.get("best_val_loss")
            sample_count = int(meta.get("sample_count", 0))
            nan_skips = int(meta.get("nan_skips", 0))
            alert_count = int(meta.get("collapse_alert_count", 0))
            trainer.collapse_monitor.initial_pairwise_pred_dist_mean = meta.get("collapse_baseline")
        resumed_from = step

        # --- artifacts written once the inputs are known to be good ---------------------------
        if primary:
            cfg.write_yaml(config, run_dir / CONFIG_NAME)
            write_text_atomic(run_dir / FLAGS_NAME, _config_to_flags(config))
            shutil.copyfile(snapshot.root / MANIFEST_NAME, run_dir / MANIFEST_NAME)
            if preflight_report is not None:
                from geno_lewm_jax.training.preflight import REPORT_NAME, save_report

                save_report(preflight_report, run_dir / REPORT_NAME)
        log = EventLog(run_dir / LOG_NAME, enabled=primary)
        for bad_step, reason in skipped_checkpoints:
            log.emit("train.checkpoint_corrupt", step=bad_step, reason=reason)
            print(f"warning: checkpoint at step {bad_step} is unreadable and was moved aside ({reason})", file=sys.stderr)
        if resumed_from:
            log.emit("train.resume", run_id=config.run_id, resumed_from_step=resumed_from, target_steps=config.training.max_steps)
        else:
            log.emit(
                "train.start",
                run_id=config.run_id,
                target_steps=config.training.max_steps,
                dataset_snapshot_id=snapshot.snapshot_id,
                encoder_identity=getattr(encoder, "identity", None),
                state_contract=encoder.contract,
                devices=jax.device_count(),
                processes=jax.process_count(),
            )

        # --- held-out validation batch for the collapse monitor -------------------------------
        val_batch = None
        if config.training.validation_batches > 0:
            val_stream = TupleStream.from_config(snapshot, config, split="validation")
            val_tuples = [t for b in val_stream.take(config.training.validation_batches) for t in b.tuples]
            k_val = max(len(t.edits) for t in val_tuples)
            from geno_lewm_jax.data.stream import bucket_for

            val_batch = encode(val_tuples, bucket_for(k_val, config.training.k_buckets))

        # The step-0 baseline evaluates a copy of the initial parameters on a worker thread, so
        # its compile overlaps the first steps; it is recorded (in order) before any later use.
        baseline: Future | None = None

        def settle_baseline() -> None:
            nonlocal baseline
            if initial_params is not None:  # stopped before step 1 finished
                start_baseline()
            if baseline is not None:
                pending, baseline = baseline, None
                validate(0, pending.result())

        def validate(at_step: int, out: Any = None) -> CollapseCheck | None:
            nonlocal best_val, alert_count
            if val_batch is None:
                return None
            if at_step > 0:
                settle_baseline()
            if out is None:
                out = trainer.eval_step(val_batch)
            check = trainer.check_collapse(out, at_step, logger=log)
            val_loss = float(out.loss)
            alert_count += len(check.alerts) if check is not None else 0
            if math.isfinite(val_loss) and (best_val is None or val_loss < best_val):
                best_val = val_loss
            row = {
                "step": at_step,
                "val_loss": val_loss,
                "val_pred_loss": float(out.pred_loss),
                **(check.metrics.to_dict() if check else {}),
            }
            collapse_history.append(row)
            log.emit("train.validation", step=at_step, val_loss=val_loss)
            return check

        initial_params = trainer.params_snapshot() if step == 0 and val_batch is not None else None

        def start_baseline() -> None:
            """Evaluate the untrained model (``initial_params``): on a worker thread when this is the
            only process; in a multi-process run in line, since every process must issue its
            collectives (the eval's and the steps') in the same order."""
            nonlocal baseline, initial_params
            params, initial_params = initial_params, None
            if jax.process_count() > 1:
                validate(0, trainer.eval_step(val_batch, params))
                return
            evaluator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline")
            baseline = evaluator.submit(lambda: jax.block_until_ready(trainer.eval_step(val_batch, params)))
            evaluator.shutdown(wait=False)

        def save(at_step: int, cursor: dict[str, Any], val_loss: float | None) -> None:
            settle_baseline()  # the checkpoint carries the baseline
            meta = {
                "schema": META_SCHEMA,
                "run_id": config.run_id,
                "step": at_step,
                "horizon": config.training.max_steps,
                "config": cfg.to_dict(config),
                "config_fingerprint": cfg.fingerprint(config, exclude=RESUME_FREE_FIELDS),
                "dataset_snapshot_id": snapshot.snapshot_id,
                "encoder_identity": getattr(encoder, "identity", None),
                "state_contract": encoder.contract,
                "cursor": cursor,
                "seeds": seeds.to_dict(),
                "collapse_baseline": trainer.collapse_monitor.initial_pairwise_pred_dist_mean,
                "history": history,
                "collapse_history": collapse_history,
                "best_val_loss": best_val,
                "sample_count": sample_count,
                "nan_skips": nan_skips,
                "collapse_alert_count": alert_count,
            }
            store.save(at_step, trainer.state, meta, validation_loss=val_loss)
            log.emit("train.checkpoint", step=at_step, path=public_path(store.directory / str(at_step), root=run_dir))

        # --- the loop ---------------------------------------------------------------------
        total = config.training.max_steps
        display = ProgressDisplay(total, stream=progress_stream, enabled=primary)
        producer = BatchProducer(train_stream, lambda tb: encode(tb.tuples, tb.k_bucket), depth=max(1, config.data.prefetch_batches))
        first_step_seconds = None
        window_start, window_tuples = time.monotonic(), 0
        # Steady-state throughput: whole loop iterations (Carbon wait included), except those whose
        # step compiled a new K bucket.
        steady_tuples, steady_time, compiled_buckets = 0, 0.0, set()
        iteration_start = time.monotonic()
        last_loss: float | None = None
        cursor = train_stream.cursor()
        while step < total and stop.signal_name is None:
            produced = producer.next()
            t0 = time.monotonic()
            result = trainer.train_step(produced.batch, step + 1)  # NaNLossError propagates
            step += 1
            if initial_params is not None:  # after step 1, so its compile does not delay the first step
                start_baseline()
            dt = time.monotonic() - t0
            now = time.monotonic()
            if first_step_seconds is None:
                first_step_seconds = now - started
            bucket = int(produced.batch.action_mask.shape[1])
            if bucket in compiled_buckets:
                steady_tuples += produced.n_tuples
                steady_time += now - iteration_start
            compiled_buckets.add(bucket)
            iteration_start = now
            cursor = produced.cursor
            sample_count += produced.n_tuples * jax.process_count()
            window_tuples += produced.n_tuples * jax.process_count()
            nan_skips += int(result.skipped)
            last_loss = result.loss
            if result.skipped:
                log.emit("train.skip_step", step=step, loss=result.loss, grad_norm=result.grad_norm)
            lr = config.optimizer.lr * result.lr_multiplier
            if step % config.training.log_every_steps == 0 or step == total or step == resumed_from + 1:
                elapsed = time.monotonic() - window_start
                row = {
                    **result.to_dict(),
                    "lr": lr,
                    "step_time": dt,
                    "tuples_per_s": window_tuples / elapsed if elapsed > 0 else None,
                }
                history.append(row)
                log.emit("train.progress", **row)
                display.update(step, row)
                window_start, window_tuples = time.monotonic(), 0
            check = None
            if step % config.training.collapse_log_every_steps == 0 or step == total:
                check = validate(step)
            if (
                step % config.training.checkpoint_every_steps == 0
                or step == total
                or stop.signal_name is not None
                or step == stop_after_step
            ):
                save(step, cursor, collapse_history[-1]["val_loss"] if check is not None else None)
            if check is not None and config.training.stop_on_collapse:
                fatal = [a for a in check.alerts if a.criterion != "kl_reg"]
                if fatal:
                    store.wait()
                    raise CollapseDetectedError(
                        f"collapse detected at step {step}: "
                        + ", ".join(f"{a.criterion}={a.value:.4g} (threshold {a.threshold:.4g})" for a in fatal),
                        details={"step": step, "alerts": [a.to_dict() for a in fatal]},
                        remediation="Inspect train.log; lower the learning rate or resume from an earlier checkpoint.",
                    )
            if step == stop_after_step:
                break
        display.finish()
        settle_baseline()
        if stop.signal_name is not None and store.latest_step() != step:
            save(step, cursor, None)
        store.wait()

        # --- summaries ------------------------------------------------------------------------
        wall = time.monotonic() - started
        tps = steady_tuples * jax.process_count() / steady_time if steady_tuples and steady_time > 0 else None
        status = "completed" if step >= total else ("signalled" if stop.signal_name else "interrupted")
        metrics = {
            "schema_version": "1.0.0",
            "run_id": config.run_id,
            "dataset_snapshot_id": snapshot.snapshot_id,
            "steps_completed": step,
            "resumed_from_step": resumed_from,
            "sample_count": sample_count,
            "train_loss": last_loss,
            "best_val_loss": best_val,
            "metrics": {
                "train_loss": last_loss,
                "sample_count": sample_count,
                "nan_skip_count": nan_skips,
                "collapse_alert_count": alert_count,
                "tuples_per_second": tps,
                "first_step_seconds": first_step_seconds,
            },
            "history": history,
            "collapse_history": collapse_history,
        }
        run_meta = {
            "schema_version": "1.0.0",
            "run_id": config.run_id,
            "generated_by": "geno_lewm_jax.training.carbon",
            "package_version": __version__,
            "command": command,
            "status": status,
            "stopped_by_signal": stop.signal_name,
            "dataset_snapshot_id": snapshot.snapshot_id,
            "encoder_identity": getattr(encoder, "identity", None),
            "state_contract": encoder.contract,
            "artifacts": {
                "dataset_manifest": MANIFEST_NAME,
                "training_config": CONFIG_NAME,
                "flags": FLAGS_NAME,
                "metrics": METRICS_NAME,
                "logs": [LOG_NAME],
                "checkpoints": CHECKPOINT_DIR,
                "plot": PLOT_NAME,
                "training_preflight_report": "training_preflight_report.json",
            },
            "hardware": [f"{platform.system()} {platform.machine()}", f"Python {platform.python_version()}"]
            + [f"jax {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s)"],
            "seeds": {"base": config.seed, **seeds.to_dict()},
            "determinism": determinism.to_dict() if hasattr(determinism, "to_dict") else str(determinism),
            "resumed_from_step": resumed_from,
            "steps_completed": step,
            "config_fingerprint": cfg.fingerprint(config, exclude=RESUME_FREE_FIELDS),
        }
        if primary:
            write_json(run_dir / METRICS_NAME, metrics)
            write_json(run_dir / RUN_NAME, run_meta)
            write_training_plot(run_dir / PLOT_NAME, history, collapse_history)
        log.emit("train.end", steps_completed=step, status=status, wall_seconds=wall)
        return CarbonTrainingReport(
            run_id=config.run_id,
            run_dir=run_dir.absolute(),
            dataset_snapshot_id=snapshot.snapshot_id,
            steps_requested=total,
            steps_completed=step,
            resumed_from_step=resumed_from,
            sample_count=sample_count,
            final_loss=last_loss,
            stopped_by_signal=stop.signal_name,
            checkpoint_dir=store.directory,
            metrics_path=run_dir / METRICS_NAME,
            log_path=run_dir / LOG_NAME,
            config_path=run_dir / CONFIG_NAME,
            training_metadata_path=run_dir / RUN_NAME,
            wall_seconds=wall,
            first_step_seconds=first_step_seconds,
            tuples_per_second=tps,
        )
    finally:
        if producer is not None:
            producer.close()
        if trainer_future is not None and trainer_future.exception() is None:
            trainer_future.result().close()  # drop queued compiles, let the running one finish before exit
        if store is not None:
            try:
                store.wait()
            finally:
                store.close()
        if log is not None:
            log.close()
        stop.restore()
        if lock is not None:
            lock.release()


__all__ = ["CarbonTrainingReport", "run_carbon_training"]
