"""Resumable checkpoints: a thin wrapper over an Orbax ``CheckpointManager``.

Each checkpoint is one Orbax step directory holding two items:

* ``state``: the array pytree (params, optimizer state, RNG key), saved with
  ``StandardSave`` so that every process writes its own shards and a restore can
  reshard onto another device count;
* ``meta``: a small JSON document (step, horizon, config fingerprint, data-stream
  cursor, Python RNG, collapse baseline, metric history...).

Orbax finalises a step directory atomically (temporary directory, then rename),
so a crash mid-save never leaves a visible half-written checkpoint. Retention
keeps the latest ``keep_latest`` plus the best by validation loss. A latest
checkpoint that fails to restore is moved aside (never deleted) and the next
older one is used.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from geno_lewm_jax.errors import CheckpointCorruptError

VALIDATION_METRIC = "val_loss"
CORRUPT_DIR_NAME = "corrupt"


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :meth:`CheckpointStore.restore_latest` found."""

    step: int
    state: Any
    meta: dict[str, Any]
    skipped: tuple[tuple[int, str], ...]  # (step, reason) of newer checkpoints that failed to restore


class CheckpointStore:
    """Save and restore training checkpoints under ``directory``."""

    def __init__(self, directory: str | Path, *, keep_latest: int = 3, async_save: bool = True) -> None:
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
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
            cleanup_tmp_directories=True,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    # -- queries ------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    # -- save ---------------------------------------------------------------------------------
    def save(
        self,
        step: int,
        state: Any,
        meta: Mapping[str, Any],
        *,
        validation_loss: float | None = None,
    ) -> bool:
        """Start saving ``state`` and ``meta`` as ``step`` (returns once device arrays are copied)."""
        metrics = {VALIDATION_METRIC: float(validation_loss)} if validation_loss is not None else None
        return self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
            metrics=metrics,
            force=True,
        )

    def wait(self) -> None:
        """Block until pending asynchronous writes are durable."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    # -- restore ------------------------------------------------------------------------------
    def read_meta(self, step: int) -> dict[str, Any]:
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["meta"])

    def restore_latest(
        self,
        abstract_state: Any,
        *,
        on_skip: Callable[[int, str], None] | None = None,
    ) -> Restored | None:
        """Restore the newest checkpoint that reads back whole; move broken newer ones aside.

        Returns None when there is no checkpoint at all. Raises CheckpointCorruptError
        when checkpoints exist but none restores.
        """
        skipped: list[tuple[int, str]] = []
        for step in reversed(self.steps()):
            try:
                state, meta = self.restore(step, abstract_state)
            except Exception as exc:  # noqa: BLE001 - any read failure means this step is unusable
                reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                skipped.append((step, reason))
                self._quarantine(step)
                if on_skip is not None:
                    on_skip(step, reason)
                continue
            return Restored(step=step, state=state, meta=meta, skipped=tuple(skipped))
        if skipped:
            raise CheckpointCorruptError(
                f"no checkpoint in {self.directory} could be restored (tried steps {[s for s, _ in skipped]})",
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
