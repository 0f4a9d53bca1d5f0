"""Resumable checkpoints: a thin wrapper over an Orbax ``CheckpointManager``.

Each checkpoint is one Orbax step directory holding two items:

* ``state``: the array pytree (params, optimizer state, RNG key), saved with
  ``StandardSave`` so that every process writes its own shards and a restore can
  reshard onto another device count;
* ``meta``: a small JSON document (step, horizon, config fingerprint, data-stream
  cursor, Python RNG, collapse baseline, metric history...).

Orbax finalises a step directory atomically (temporary directory, then rename),
so a crash mid-save never leaves a visible half-written checkpoint. Retention
keeps the latest ``keep_latest`` plus the best by validation loss.

The store never lies about what it saved. A save runs in the background; it is
*committed* only once Orbax has finished it and its step directory exists.
Until then it is not in :attr:`CheckpointStore.committed_steps`, and its
``on_commit`` callback (the caller's "checkpoint saved" event) has not run. A save that fails
(disk full, directory made read-only...) raises :class:`CheckpointSaveError`
from the next :meth:`~CheckpointStore.save`, :meth:`~CheckpointStore.wait` or
:meth:`~CheckpointStore.check`; its ``<step>.orbax-checkpoint-tmp`` directory is
left for Orbax to clean up when the directory is next opened.

Reading is just as careful: a checkpoint whose meta or arrays do not read back
(garbage JSON, an empty step directory, truncated array files) is moved aside
into ``../corrupt/`` (never deleted) and the next older one is used. "Newest"
is by step number, never by file time, so clock skew cannot reorder them.

The checkpoint directory is created by the first save, so a run that fails
before saving leaves no empty ``checkpoints/`` behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from geno_lewm_jax.errors import CheckpointCorruptError, CheckpointSaveError

VALIDATION_METRIC = "val_loss"
CORRUPT_DIR_NAME = "corrupt"
TMP_SUFFIX = ".orbax-checkpoint-tmp"


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :meth:`CheckpointStore.restore_latest` found."""

    step: int
    state: Any
    meta: dict[str, Any]
    skipped: tuple[tuple[int, str], ...]  # (step, reason) of newer checkpoints that failed to restore


@dataclasses.dataclass(frozen=True)
class ReadableMeta:
    """What :meth:`CheckpointStore.latest_readable_meta` found."""

    step: int
    meta: dict[str, Any]
    skipped: tuple[tuple[int, str], ...]  # (step, reason) of newer checkpoints whose meta did not read


@dataclasses.dataclass
class _Pending:
    step: int
    on_commit: Callable[[int], None] | None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class _OrbaxErrorCapture(logging.Filter):
    """Keep Orbax's background-save error logs (tracebacks) off stderr while a store is open.

    The store turns the same failure into one typed error; the last message is kept for its details.
    """

    def __init__(self) -> None:
        super().__init__("geno_lewm_jax.checkpointing")
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "orbax" in record.pathname.replace("\\", "/"):
            self.last = " ".join(record.getMessage().split())[:300]
            return False
        return True


class CheckpointStore:
    """Save and restore training checkpoints under ``directory``."""

    def __init__(self, directory: str | Path, *, keep_latest: int = 3, async_save: bool = True) -> None:
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=keep_latest),
                    policies.BestN(
                        get_metric_fn=lambda m: m[VALIDATION_METRIC],
                        reverse=True,
                        n=1,
                        keep_checkpoints_without_metrics=False,
                    ),
                ]
            ),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=self.directory.is_dir(),
            create=False,  # the first save creates it
        )
        self._capture = _OrbaxErrorCapture()
        logging.getLogger("absl").addFilter(self._capture)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        self._pending: _Pending | None = None
        self._closed = False

    # -- queries ------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        """Steps saved or being saved by this store, oldest first (a failed save drops out when it settles)."""
        return sorted(self._manager.all_steps())

    @property
    def committed_steps(self) -> list[int]:
        """Steps known to be durable on disk: :meth:`steps` without a save still in flight."""
        pending = self._pending.step if self._pending is not None else None
        return [s for s in self.steps() if s != pending]

    def latest_step(self) -> int | None:
        """The highest step number saved or being saved (by number, whatever the directories' times say)."""
        steps = self.steps()
        return steps[-1] if steps else None

    # -- save ---------------------------------------------------------------------------------
    def save(
        self,
        step: int,
        state: Any,
        meta: Mapping[str, Any],
        *,
        validation_loss: float | None = None,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        """Start saving ``state`` and ``meta`` as ``step``; returns once device arrays are copied.

        The previous save is settled first (its failure raises CheckpointSaveError here).
        ``on_commit(step)`` runs in the caller's thread once this save is known durable
        (from a later ``save``, ``wait``, ``check`` or ``close``), never if it fails.
        """
        self._settle()
        self._capture.last = None
        metrics = {VALIDATION_METRIC: float(validation_loss)} if validation_loss is not None else None
        try:
            self._probe_writable()
        except OSError as exc:
            raise self._save_error(step, exc) from None
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
                metrics=metrics,
                force=True,
            )
        except Exception as exc:  # noqa: BLE001 - any failure to start the save means no checkpoint
            self._manager.reload()
            raise self._save_error(step, exc) from None
        self._pending = _Pending(step, on_commit)
        self.check()

    def _probe_writable(self) -> None:
        """Create and remove a file in the directory before Orbax starts its save threads.

        A step directory Orbax cannot create leaves its other save threads waiting for it
        until their timeout (minutes), holding up the exit; a directory that turned read-only
        or vanished is caught here instead.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=self.directory)
        os.close(fd)
        os.unlink(probe)

    def check(self) -> None:
        """Settle a finished background save without waiting for one still running.

        Raises CheckpointSaveError if it failed. With several processes this only acts
        in :meth:`save` and :meth:`wait`, which every process calls at the same points.
        """
        import jax

        if jax.process_count() == 1 and not self._manager.is_saving_in_progress():
            self._settle()

    def wait(self) -> None:
        """Block until the pending save is durable (raises CheckpointSaveError if it failed)."""
        self._settle()

    def close(self) -> None:
        """Settle the pending save, then release Orbax's threads (safe to call twice; never raises).

        A pending save that failed is not announced; call :meth:`wait` first to have it raised.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._settle()
        except CheckpointSaveError:
            pass  # closing on an error path: that error is the one to report
        finally:
            try:
                # Orbax's start-up clean-up of old tmp directories runs on its own thread and
                # close() does not wait for it: left running, it fails noisily at interpreter exit.
                getattr(self._manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
                self._manager.close()
            except Exception:  # noqa: BLE001 - a failed save was already reported by _settle
                pass
            logging.getLogger("absl").removeFilter(self._capture)
            self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """A run that failed before its first checkpoint leaves no empty checkpoint directory."""
        import jax

        if jax.process_index() == 0:
            try:
                self.directory.rmdir()  # fails (and is left alone) unless empty
            except OSError:
                pass

    def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        failure: BaseException | str | None = None
        try:
            self._manager.wait_until_finished()
            if not (self.directory / str(pending.step)).is_dir():
                failure = self._capture.last or "the step directory was never committed"
        except Exception as exc:  # noqa: BLE001 - the background save failed
            failure = exc
        if failure is not None:
            self._drain_failed_save()
            self._manager.reload()  # forget the step Orbax may still list
            raise self._save_error(pending.step, failure)
        if pending.on_commit is not None:
            pending.on_commit(pending.step)

    def _drain_failed_save(self, timeout: float = 60.0) -> None:
        """Let the failed save's other writes finish: Orbax stops waiting at the first error, and a
        write still running when the interpreter exits fails again, noisily, on its closed executors."""
        import time

        async_manager = getattr(getattr(self._manager, "_checkpointer", None), "_async_manager", None)
        deadline = time.monotonic() + timeout
        for future in getattr(async_manager, "_commit_futures", None) or ():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except BaseException:  # noqa: BLE001 - the save already failed; only its end matters here
                pass

    def _save_error(self, step: int, failure: BaseException | str) -> CheckpointSaveError:
        reason = failure if isinstance(failure, str) else _reason(failure)
        errno = getattr(failure, "errno", None)
        return CheckpointSaveError(
            f"checkpoint at step {step} was not saved to {self.directory}: {reason}",
            details={"step": step, "path": str(self.directory), "reason": reason, "errno": errno},
            remediation="Free space or fix permissions on the checkpoint directory, then rerun the same "
            f"command: training resumes from the newest saved checkpoint ({self.latest_step()}).",
        )

    # -- restore ------------------------------------------------------------------------------
    def read_meta(self, step: int) -> dict[str, Any]:
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = restored["meta"]
        if not isinstance(meta, Mapping):
            raise ValueError(f"meta is a {type(meta).__name__}, not a JSON object")
        if "step" in meta and meta["step"] != step:
            raise ValueError(f"meta says step {meta['step']!r} in the directory of step {step}")
        return dict(meta)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["meta"])

    def latest_readable_meta(
        self,
        *,
        on_skip: Callable[[int, str], None] | None = None,
        move_aside: bool = True,
    ) -> ReadableMeta | None:
        """The newest checkpoint whose meta reads back; unreadable newer ones are moved aside.

        Returns None when there is no checkpoint at all. Raises CheckpointCorruptError when
        checkpoints exist but no meta reads back. ``move_aside=False`` only skips them
        (for readers such as export that must not change a run directory).
        """
        found = self._newest_readable(self.read_meta, on_skip=on_skip, move_aside=move_aside, what="meta")
        return None if found is None else ReadableMeta(step=found[0], meta=found[1], skipped=found[2])

    def restore_latest(
        self,
        abstract_state: Any,
        *,
        on_skip: Callable[[int, str], None] | None = None,
        move_aside: bool = True,
    ) -> Restored | None:
        """Restore the newest checkpoint that reads back whole; move broken newer ones aside.

        Returns None when there is no checkpoint at all. Raises CheckpointCorruptError
        when checkpoints exist but none restores.
        """
        found = self._newest_readable(
            lambda step: self.restore(step, abstract_state), on_skip=on_skip, move_aside=move_aside, what="checkpoint"
        )
        if found is None:
            return None
        step, (state, meta), skipped = found
        return Restored(step=step, state=state, meta=meta, skipped=skipped)

    def _newest_readable(
        self,
        read: Callable[[int], Any],
        *,
        on_skip: Callable[[int, str], None] | None,
        move_aside: bool,
        what: str,
    ) -> tuple[int, Any, tuple[tuple[int, str], ...]] | None:
        """(step, what ``read`` returned, skipped) for the newest step that ``read`` accepts."""
        skipped: list[tuple[int, str]] = []
        for step in reversed(self.steps()):
            try:
                value = read(step)
            except Exception as exc:  # noqa: BLE001 - any read failure means this step is unusable
                reason = _reason(exc)
                skipped.append((step, reason))
                if move_aside:
                    self._quarantine(step)
                if on_skip is not None:
                    on_skip(step, reason)
                continue
            return step, value, tuple(skipped)
        if skipped:
            where = f"moved to {self.directory.parent / CORRUPT_DIR_NAME}" if move_aside else "left in place"
            raise CheckpointCorruptError(
                f"no {what} in {self.directory} could be read (tried steps {[s for s, _ in skipped]}; {where})",
                details={"directory": str(self.directory), "skipped": skipped},
                remediation="Inspect the checkpoints moved to the 'corrupt' folder, or start a new run directory.",
            )
        return None

    def _quarantine(self, step: int) -> None:
        """Move a broken step directory out of Orbax's view, keeping its bytes (process 0 moves it)."""
        import jax

        source = self.directory / str(step)
        if jax.process_index() == 0 and source.exists():
            target_root = self.directory.parent / CORRUPT_DIR_NAME
            target_root.mkdir(parents=True, exist_ok=True)
            target = target_root / f"step-{step}"
            n = 1
            while target.exists():
                target = target_root / f"step-{step}.{n}"
                n += 1
            shutil.move(str(source), str(target))
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"checkpoint-quarantine-{step}")
        self._manager.reload()
