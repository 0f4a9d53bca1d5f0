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
    tb/                              TensorBoard event files of the same curves (unless --notensorboard)
    checkpoints/<step>/              Orbax checkpoints (latest N plus best by validation loss)
    metrics.json, training_run.json  strict JSON summaries (a --sweep run: variants side by side)
    sweep_results.csv                one row per variant (a --sweep run only)
    training_curves.png              loss, LR and collapse curves

    profile/                         jax.profiler trace of --profile_steps (when asked)
    feature_cache/                   pooled Carbon features (--feature_cache without --feature_cache_dir)

Only process 0 writes logs, summaries and plots; every process takes part in
checkpoint saves and restores. The loop itself lives in
:mod:`geno_lewm_jax.training.loop`; this module opens and closes what it needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from geno_lewm_jax import config as cfg
from geno_lewm_jax.checkpointing import CheckpointStore
from geno_lewm_jax.errors import InputError
from geno_lewm_jax.events import LOG_NAME, ProgressDisplay
from geno_lewm_jax.model import abstract_module, build_action_encoder, build_predictor
from geno_lewm_jax.plots import PLOT_NAME, write_training_plot
from geno_lewm_jax.run_dir import RunDirLock, write_json, write_text_atomic
from geno_lewm_jax.sinks import MetricsFanout, open_run_metrics, require_packages
from geno_lewm_jax.sweep.results import write_sweep_plot, write_sweep_results
from geno_lewm_jax.sweep.trainer import SweepTrainer, variant_init_seeds
from geno_lewm_jax.training.carbon_batches import BatchProducer, StateEncoder, encode_training_batch
from geno_lewm_jax.training.loop import HeldOutBatch, LoopParts, TrainingLoop
from geno_lewm_jax.training.reproducibility import configure_reproducibility
from geno_lewm_jax.training.run_state import RESUME_FREE_FIELDS, RunState, check_resumable, run_identity
from geno_lewm_jax.training.run_summary import (
    CHECKPOINT_DIR,
    CONFIG_NAME,
    FLAGS_NAME,
    MANIFEST_NAME,
    METRICS_NAME,
    RUN_NAME,
    config_to_flags,
    metrics_summary,
    run_metadata,
)
from geno_lewm_jax.training.timeline import PRODUCER_PHASES, PhaseTally
from geno_lewm_jax.training.trainer import Trainer, TrainerSeeds


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
    val_delta_r2: float | None = None  # the latest validation's skill over the no-change baseline
    val_cos_skill: float | None = None
    collapse_alert_count: int = 0

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
    """Build the modules, compile the step per K bucket from their shapes meanwhile, initialise; return the Trainer.

    The compile is the longest part of the start and needs only shapes, so it
    begins (on the trainer's compile threads) as soon as the first modules exist:
    their values are numpy draws on the host, ~0.4 s. Loading Carbon overlaps all of it.
    """
    # A sweep starts each variant from its own seed's modules (one build per distinct seed).
    init_seeds = variant_init_seeds(config) if config.sweep else [seeds.predictor]

    def build() -> Trainer:
        built = {init_seeds[0]: _modules(config, init_seeds[0])}
        shapes = tuple(abstract_module(m) for m in built[init_seeds[0]])
        if config.sweep:
            trainer: Trainer = SweepTrainer(*shapes, config, total_steps=config.training.max_steps, mesh=mesh)
        else:
            trainer = Trainer(*shapes, None, config, total_steps=config.training.max_steps, mesh=mesh)
        trainer.precompile(config.data.batch_size // jax.process_count(), buckets)
        for s in init_seeds[1:]:
            if s not in built:
                built[s] = _modules(config, s)
        predictors, action_encoders = ([built[s][i] for s in init_seeds] for i in (0, 1))
        if config.sweep:
            trainer.initialize(predictors, action_encoders)
        else:
            trainer.initialize(predictors[0], action_encoders[0])
        return trainer

    return _in_daemon_thread(build)


def _modules(config: cfg.Config, seed: int) -> tuple[nnx.Module, nnx.Module]:
    """The predictor from ``seed`` and the action encoder from ``seed + 1``, as single runs seed them."""
    return build_predictor(config, seed=seed), build_action_encoder(config, seed=seed + 1)


START_THREAD_NAMES = ("job-start", "step-compiler", "update-compiler")


def unfinished_start_work() -> bool:
    """Whether a start-up thread (the compile, the Carbon load) is still running, e.g. after a SIGTERM.

    Such a thread is inside XLA or torch: the interpreter's shutdown would kill it mid-call
    (and C++ aborts on that), so the entry point then exits without the shutdown.
    """
    return any(t.is_alive() and t.name in START_THREAD_NAMES for t in threading.enumerate())


def _in_daemon_thread(fn: Callable[[], Any], name: str = "job-start") -> Future:
    """Run ``fn`` on a daemon thread: a run stopped by a signal mid-compile exits without waiting for XLA."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _unless_stopped(future: Future, stop: _StopFlag) -> Any:
    """``future``'s result, or None as soon as a stop signal arrives while it is still running.

    The start's long parts (the step's compile, importing torch and loading Carbon) run on
    daemon threads, so a SIGTERM during them ends the process in well under a scheduler's
    grace period instead of after them.
    """
    while True:
        try:
            return future.result(timeout=0.1)
        except TimeoutError:
            if stop.signal_name is not None:
                return None


@dataclasses.dataclass
class _Resources:
    """What a run holds open, closed in reverse order whatever happens."""

    lock: RunDirLock | None = None
    stop: _StopFlag | None = None
    producer: BatchProducer | None = None
    trainer_future: Future | None = None
    store: CheckpointStore | None = None
    log: MetricsFanout | None = None

    def close(self) -> None:
        try:
            if self.producer is not None:
                self.producer.close()
            future = self.trainer_future
            if future is not None and future.done() and future.exception() is None:
                future.result().close()  # drop queued compiles, let the running one finish before exit
            if self.store is not None:
                self.store.close()  # a failed save was raised by the loop's save/wait already
        finally:
            if self.log is not None:
                self.log.close()
            if self.stop is not None:
                self.stop.restore()
            if self.lock is not None:
                self.lock.release()


def _warn_unreadable(step: int, reason: str) -> None:
    print(f"warning: checkpoint at step {step} is unreadable and was moved aside ({reason})", file=sys.stderr)


def _latest_meta(store: CheckpointStore, config: cfg.Config, run_dir: Path) -> tuple[dict[str, Any] | None, tuple]:
    """The newest readable checkpoint's meta, checked resumable, and the unreadable newer ones moved aside.

    (None, ()) for a fresh run (refused under --resume); CheckpointCorruptError when none reads.
    """
    found = store.latest_readable_meta(on_skip=_warn_unreadable)
    if found is not None:
        check_resumable(found.meta, config, run_dir)
        return found.meta, found.skipped
    if config.runtime.resume:
        raise InputError(
            f"--resume was given but {run_dir / CHECKPOINT_DIR} holds no checkpoint",
            details={"field": "runtime.resume", "path": str(run_dir)},
            remediation="Drop --resume to start a fresh run.",
        )
    return None, ()


def _load_encoder(config: cfg.Config, encoder: StateEncoder | None) -> StateEncoder:
    """The bridge's CarbonEncoder (unless one is given), checked against the predictor's width."""
    if encoder is None:
        from bridge import CarbonEncoder

        encoder = CarbonEncoder.from_config(config, device=None if config.runtime.device == "auto" else config.runtime.device)
        if str(getattr(encoder, "device", "cpu")).startswith("cpu"):
            import torch

            threads = config.runtime.torch_cpu_threads or max(1, (os.cpu_count() or 2) // 2)
            torch.set_num_threads(threads)  # the other cores run the jitted step
    if encoder.d_state != config.predictor.d_state:
        raise InputError(
            f"predictor.d_state={config.predictor.d_state} but the Carbon encoder's state width is {encoder.d_state}",
            details={"field": "predictor.d_state", "expected": encoder.d_state},
            remediation=f"Set --d_state={encoder.d_state}.",
        )
    return encoder


@dataclasses.dataclass
class _Encoding:
    """How tuples become batches: Carbon directly, or through the pooled-feature cache."""

    config: cfg.Config
    encoder: StateEncoder
    cache: Any = None
    counts: Any = None
    # One batch at a time: the producer's and the validation batch's encodings share the encoder and the cache.
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: cfg.Config, encoder: StateEncoder) -> "_Encoding":
        path = cfg.feature_cache_path(config)
        if path is None:
            return cls(config, encoder)
        from bridge import CacheCounts, FeatureCache

        return cls(config, encoder, FeatureCache(path), CacheCounts())

    def _carbon(self, sequences: Any, loci: Any) -> Any:
        from bridge import encode_with_cache

        return encode_with_cache(self.encoder, self.cache, sequences, loci, counts=self.counts)

    def encode(self, tuples: Any, k: int) -> Any:
        side_stream = getattr(self.encoder, "side_stream", contextlib.nullcontext)
        with self.lock, side_stream():
            return encode_training_batch(
                encoder=self.encoder,
                tuples=tuples,
                k=k,
                max_window_bp=self.config.action.max_window_bp,
                encode_fn=self._carbon if self.cache is not None else None,
            )

    def cache_counts(self) -> tuple[int, int]:
        return self.counts.snapshot()


def _resume(trainer: Trainer, store: CheckpointStore, stream: Any, config: cfg.Config, run_dir: Path) -> tuple[RunState, tuple]:
    """Restore the newest good checkpoint into ``trainer`` and ``stream``; a fresh RunState if none."""
    if store.latest_step() is None:
        return RunState(cursor=stream.cursor()), ()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainer.state)
    restored = store.restore_latest(abstract, on_skip=_warn_unreadable)
    assert restored is not None
    check_resumable(restored.meta, config, run_dir)
    trainer.restore_state(restored.state)
    stream.restore(restored.meta["cursor"])
    state = RunState.from_meta(restored.meta)
    trainer.collapse_monitor.initial_pairwise_pred_dist_mean = state.collapse_baseline
    return state, restored.skipped


def _write_inputs_record(config: cfg.Config, run_dir: Path, snapshot: Any, preflight_report: Any) -> None:
    """The effective config, flags, manifest and preflight report, once the inputs are known good."""
    cfg.write_yaml(config, run_dir / CONFIG_NAME)
    write_text_atomic(run_dir / FLAGS_NAME, config_to_flags(config))
    shutil.copyfile(snapshot.root / MANIFEST_NAME, run_dir / MANIFEST_NAME)
    if preflight_report is not None:
        from geno_lewm_jax.training.preflight import REPORT_NAME, save_report

        save_report(preflight_report, run_dir / REPORT_NAME)


def _announce(log: MetricsFanout, config: cfg.Config, state: RunState, skipped: tuple, identity: dict[str, Any]) -> None:
    for bad_step, reason in skipped:  # each was announced on stderr when it was moved aside
        log.emit("train.checkpoint_corrupt", step=bad_step, reason=reason)
    if state.step:
        log.emit("train.resume", run_id=config.run_id, resumed_from_step=state.step, target_steps=config.training.max_steps)
        return
    log.emit(
        "train.start",
        run_id=config.run_id,
        target_steps=config.training.max_steps,
        dataset_snapshot_id=identity["dataset_snapshot_id"],
        encoder_identity=identity["encoder_identity"],
        state_contract=identity["state_contract"],
        devices=jax.device_count(),
        processes=jax.process_count(),
    )


def _validation_batch(snapshot: Any, config: cfg.Config, encoding: _Encoding) -> Any:
    """The held-out batch every validation (and the collapse monitor) reads."""
    from geno_lewm_jax.data import TupleStream
    from geno_lewm_jax.data.stream import bucket_for

    val_stream = TupleStream.from_config(snapshot, config, split="validation")
    tuples = [t for b in val_stream.take(config.training.validation_batches) for t in b.tuples]
    return encoding.encode(tuples, bucket_for(max(len(t.edits) for t in tuples), config.training.k_buckets))


def _write_summaries(loop: TrainingLoop, config: cfg.Config, run_dir: Path, identity: dict[str, Any], **meta: Any) -> None:
    state = loop.state
    metrics = metrics_summary(
        config,
        state,
        snapshot_id=identity["dataset_snapshot_id"],
        resumed_from=loop.resumed_from,
        measured=loop.measured(),
        previous_path=run_dir / METRICS_NAME,
    )
    if config.sweep:
        metrics["sweep"] = write_sweep_results(run_dir, config, state)
    write_json(run_dir / METRICS_NAME, metrics)
    write_json(run_dir / RUN_NAME, run_metadata(config, state, identity=identity, resumed_from=loop.resumed_from, **meta))
    plot = write_sweep_plot if config.sweep else write_training_plot
    plot(run_dir / PLOT_NAME, state.history, state.collapse_history)


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
    res = _Resources()
    display = ProgressDisplay(config.training.max_steps, stream=progress_stream, enabled=primary)
    try:
        if primary:
            require_packages(config)  # a missing tensorboardX or wandb stops the run before the long setup
        # Process 0 holds the run-dir lock for the whole multi-host run (the directory is shared).
        res.lock = RunDirLock(run_dir).acquire() if primary else None
        res.stop = _StopFlag().install()
        res.store = CheckpointStore(run_dir / CHECKPOINT_DIR, keep_latest=config.training.keep_checkpoints)
        latest_meta, unreadable = _latest_meta(res.store, config, run_dir)
        display.phase(f"reading the dataset snapshot {config.data.dataset_dir}")
        snapshot = load_snapshot(Path(config.data.dataset_dir).expanduser(), verify="sizes")
        train_stream = TupleStream.from_config(snapshot, config)
        seeds = TrainerSeeds.from_base_seed(config.seed)
        determinism = configure_reproducibility(seed=seeds.predictor, deterministic=config.deterministic)
        mesh = data_mesh(devices)
        done = int(latest_meta["step"]) if latest_meta else 0
        cursor = latest_meta["cursor"] if latest_meta else None
        upcoming = _buckets_in_order_of_need(train_stream, cursor, min(64, config.training.max_steps - done))
        res.trainer_future = _start_trainer(config, seeds, mesh, upcoming)
        given = encoder
        if given is None:
            display.phase(f"loading Carbon from {config.encoder.model_dir} (the train step compiles meanwhile)")
        encoder = _unless_stopped(_in_daemon_thread(lambda: _load_encoder(config, given)), res.stop)
        if encoder is not None:
            display.phase("initialising the predictor and the action encoder")
        trainer = _unless_stopped(res.trainer_future, res.stop) if encoder is not None else None
        if trainer is None:
            return _stopped_before_training(config, run_dir, snapshot.snapshot_id, latest_meta, res, started)
        encoding = _Encoding.open(config, encoder)
        if latest_meta is not None:
            display.phase(f"restoring the checkpoint of step {latest_meta['step']}")
        state, skipped = _resume(trainer, res.store, train_stream, config, run_dir)
        skipped = unreadable + skipped
        if res.stop.signal_name is not None:
            return _stopped_before_training(config, run_dir, snapshot.snapshot_id, latest_meta, res, started)
        identity = run_identity(
            config,
            snapshot_id=snapshot.snapshot_id,
            encoder_identity=getattr(encoder, "identity", None),
            state_contract=encoder.contract,
            seeds=seeds.to_dict(),
        )
        if primary:
            _write_inputs_record(config, run_dir, snapshot, preflight_report)
        res.log = open_run_metrics(config, run_dir, resumed_from=state.step, enabled=primary, history=state.event_rows())
        _announce(res.log, config, state, skipped, identity)
        producer_timeline = PhaseTally(PRODUCER_PHASES)
        if hasattr(encoder, "timeline"):
            encoder.timeline = producer_timeline
        val_batch = (
            HeldOutBatch(lambda: _validation_batch(snapshot, config, encoding))
            if config.training.validation_batches > 0
            else None
        )
        res.producer = BatchProducer(
            train_stream,
            lambda tb: encoding.encode(tb.tuples, tb.k_bucket),
            depth=max(1, config.data.prefetch_batches),
            prepare=trainer.prepare,
            timeline=producer_timeline,
        )
        parts = LoopParts(
            config=config,
            run_dir=run_dir,
            trainer=trainer,
            store=res.store,
            log=res.log,
            display=display,
            producer=res.producer,
            val_batch=val_batch,
            identity=identity,
            stop=res.stop,
            stop_after_step=stop_after_step,
            producer_timeline=producer_timeline,
            cache_counts=encoding.cache_counts if encoding.cache is not None else None,
        )
        loop = TrainingLoop(parts, state, started=started)
        if not _first_compile_done(trainer, config, upcoming, display, res.stop):
            return _stopped_before_training(config, run_dir, snapshot.snapshot_id, latest_meta, res, started)
        loop.run()
        res.store.wait()
        return _finish(loop, config, run_dir, identity, res, command=command, determinism=determinism, started=started)
    finally:
        res.close()


def _first_compile_done(
    trainer: Trainer, config: cfg.Config, upcoming: list[int], display: ProgressDisplay, stop: _StopFlag
) -> bool:
    """Wait, under a named start-up phase, for the first step's program (which that step would wait for
    anyway); False if a stop signal came first."""
    if upcoming:
        display.phase(f"compiling the train step for K={upcoming[0]}")
        rows = config.data.batch_size // jax.process_count()
        _unless_stopped(_in_daemon_thread(lambda: trainer.precompile(rows, upcoming[:1], wait=True)), stop)
    return stop.signal_name is None


def _stopped_before_training(
    config: cfg.Config, run_dir: Path, snapshot_id: str, latest_meta: dict[str, Any] | None, res: _Resources, started: float
) -> CarbonTrainingReport:
    """A signal arrived before the first step: nothing new to save, so nothing is written."""
    done = int(latest_meta["step"]) if latest_meta else 0
    signal_name = res.stop.signal_name if res.stop is not None else None
    print(f"stopped by {signal_name} before the first step; nothing was saved", file=sys.stderr)
    return CarbonTrainingReport(
        run_id=config.run_id,
        run_dir=run_dir.absolute(),
        dataset_snapshot_id=snapshot_id,
        steps_requested=config.training.max_steps,
        steps_completed=done,
        resumed_from_step=done,
        sample_count=int(latest_meta.get("sample_count", 0)) if latest_meta else 0,
        final_loss=None,
        stopped_by_signal=signal_name,
        checkpoint_dir=run_dir / CHECKPOINT_DIR,
        metrics_path=run_dir / METRICS_NAME,
        log_path=run_dir / LOG_NAME,
        config_path=run_dir / CONFIG_NAME,
        training_metadata_path=run_dir / RUN_NAME,
        wall_seconds=time.monotonic() - started,
        first_step_seconds=None,
        tuples_per_second=None,
    )


def _finish(
    loop: TrainingLoop, config: cfg.Config, run_dir: Path, identity: dict[str, Any], res: _Resources, **meta: Any
) -> CarbonTrainingReport:
    """Write the summaries (process 0), log ``train.end`` and build the report."""
    state, started = loop.state, meta.pop("started")
    wall = time.monotonic() - started
    signal_name = res.stop.signal_name if res.stop is not None else None
    status = "completed" if state.step >= config.training.max_steps else ("signalled" if signal_name else "interrupted")
    if jax.process_index() == 0:
        _write_summaries(loop, config, run_dir, identity, status=status, stopped_by_signal=signal_name, **meta)
    skill = state.latest_skill()
    res.log.emit(
        "train.end",
        steps_completed=state.step,
        status=status,
        wall_seconds=wall,
        collapse_alert_count=state.collapse_alert_count,
        **skill,
    )
    measured = loop.measured()
    return CarbonTrainingReport(
        run_id=config.run_id,
        run_dir=run_dir.absolute(),
        dataset_snapshot_id=identity["dataset_snapshot_id"],
        steps_requested=config.training.max_steps,
        steps_completed=state.step,
        resumed_from_step=loop.resumed_from,
        sample_count=state.sample_count,
        final_loss=measured["train_loss"],
        stopped_by_signal=signal_name,
        checkpoint_dir=res.store.directory,
        metrics_path=run_dir / METRICS_NAME,
        log_path=run_dir / LOG_NAME,
        config_path=run_dir / CONFIG_NAME,
        training_metadata_path=run_dir / RUN_NAME,
        wall_seconds=wall,
        first_step_seconds=measured["first_step_seconds"],
        tuples_per_second=measured["tuples_per_second"],
        collapse_alert_count=state.collapse_alert_count,
        **skill,
    )


__all__ = ["CarbonTrainingReport", "RESUME_FREE_FIELDS", "run_carbon_training", "unfinished_start_work"]
