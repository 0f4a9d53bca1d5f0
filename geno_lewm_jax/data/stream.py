"""The tuple stream: fixed-shape batches of training tuples, resumable from a cursor.

What it yields (stable contract for the training job): :class:`TupleBatch`
objects, each holding this host's rows of one global batch of
``batch_size`` tuples. Every row (a :class:`TrainingTuple`) has

* ``window_id`` (sha256 hex of the source window), ``record_id``, ``window``
  (the source sequence), ``chrom``/``start_bp`` and ``source`` (the edit
  source that supplied the first edit: gnomad_common, synthetic_snv,
  synthetic_indel or clinvar);
* ``edits``: 1..max_len :class:`RelEdit`, in application order, all in
  source-window coordinates;
* ``targets``: one sequence per edit, ``targets[k]`` being the source after
  ``edits[:k+1]``, length-preserved;
* ``locus``: the pooling locus of every state of the tuple (source and all
  targets), the first edit's ``rel_pos``.

The batch adds ``k_bucket`` (the smallest entry of ``k_buckets`` that holds
the longest rollout drawn for the *global* batch, so all hosts agree; a
rollout that found no room for a step ends early and is simply masked),
``mask`` (bool ``[rows, k_bucket]``, left-aligned) and ``loci`` (int32
``[rows]``). Edits 2..K follow :mod:`geno_lewm_jax.data.rollouts`.

Modes:

* ``kstep`` (default): split-aware (see :mod:`selection`); every epoch
  visits each (window, mix slot) tuple once in a seeded random order; K from
  the rollout mix. The stream is one endless sequence of tuples across
  epochs, cut into batches of exactly ``batch_size``: an epoch's tail simply
  continues into the next epoch, so there is never a short batch.
* ``legacy``: geno-lewm 0.2.1's order and RNG (epoch e uses
  ``random.Random(seed + e)`` shared across windows, windows in file order,
  K = 1, all splits). For parity runs only.

The tuple at a stream position depends only on the snapshot, the seed and
the stream settings, never on ``batch_size`` or the host layout: iterating
``TupleStream(..., batch_size=1)`` lists exactly the (window, locus, target)
keys a training run will ask for (e.g. to pre-fill a feature cache).

``cursor()`` is a small JSON-able dict; ``restore(cursor)`` resumes in O(1)
(no replay) and yields exactly the batches an uninterrupted stream would.
With ``process_count`` P, host p takes rows ``[p*B/P, (p+1)*B/P)`` of every
global batch, so the hosts' rows together are the single-host batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from geno_lewm_jax.data.sampling import (
    DEFAULT_EDIT_TYPE_WEIGHTS,
    DEFAULT_ROLLOUT_STEP_MIX,
    EditTypeWeight,
    RolloutStepWeight,
    max_rollout_steps,
)
from geno_lewm_jax.data.selection import legacy_selection, split_selection
from geno_lewm_jax.data.snapshot import Snapshot
from geno_lewm_jax.data.sources import DEFAULT_EDIT_SOURCE_COUNTS, EditSourceCount
from geno_lewm_jax.data.tuples import KStepBuilder, LegacyBuilder, TrainingTuple, derive_seed
from geno_lewm_jax.data.synthetic_edits import DEFAULT_EDGE_MARGIN
from geno_lewm_jax.config import DEFAULT_K_BUCKETS
from geno_lewm_jax.errors import DatasetError, InputError, InvalidConfigError

CURSOR_FORMAT = "geno_lewm_jax.tuple_stream/1"
_TAG_PERMUTE = 1
StreamMode = Literal["kstep", "legacy"]


@dataclasses.dataclass(frozen=True)
class TupleBatch:
    """This host's rows of one global batch (see the module docstring)."""

    tuples: tuple[TrainingTuple, ...]
    k_bucket: int
    mask: np.ndarray
    loci: np.ndarray
    index: int
    global_batch_size: int
    process_index: int
    process_count: int

    @property
    def window_ids(self) -> tuple[str, ...]:
        return tuple(t.window_id for t in self.tuples)

    @property
    def windows(self) -> tuple[str, ...]:
        return tuple(t.window for t in self.tuples)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(t.source for t in self.tuples)

    @property
    def edits(self) -> tuple[tuple, ...]:
        return tuple(t.edits for t in self.tuples)

    @property
    def targets(self) -> tuple[tuple[str, ...], ...]:
        return tuple(t.targets for t in self.tuples)

    @property
    def steps(self) -> np.ndarray:
        return self.mask.sum(axis=1).astype(np.int32)


def bucket_for(k: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= k."""
    for b in buckets:
        if b >= k:
            return b
    raise InvalidConfigError(
        f"a rollout of {k} steps fits no K bucket in {list(buckets)}",
        details={"field": "training.k_buckets", "value": list(buckets)},
    )


def _check_int(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidConfigError(f"{field} must be an int >= {minimum}, got {value!r}", details={"field": field, "value": repr(value)})
    return value


class TupleStream:
    """Endless, deterministic, resumable batches of training tuples."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        batch_size: int,
        seed: int = 0,
        stream: StreamMode = "kstep",
        split: Literal["train", "validation"] = "train",
        k_buckets: Sequence[int] = DEFAULT_K_BUCKETS,
        max_len: int = 16,
        max_window_bp: int = 12288,
        mix: Sequence[EditSourceCount] = DEFAULT_EDIT_SOURCE_COUNTS,
        rollout_mix: Sequence[RolloutStepWeight] = DEFAULT_ROLLOUT_STEP_MIX,
        edit_type_weights: Sequence[EditTypeWeight] = DEFAULT_EDIT_TYPE_WEIGHTS,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        self.batch_size = _check_int("data.batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0)
        self.process_count = _check_int("runtime.num_processes", process_count, 1)
        self.process_index = _check_int("runtime.process_id", process_index, 0)
        if process_index >= process_count:
            raise InvalidConfigError(
                f"runtime.process_id={process_index} must be < runtime.num_processes={process_count}",
                details={"field": "runtime.process_id"},
            )
        if batch_size % process_count:
            raise InvalidConfigError(
                f"data.batch_size={batch_size} must be divisible by runtime.num_processes={process_count}",
                details={"field": "data.batch_size", "value": batch_size},
            )
        if stream not in ("kstep", "legacy"):
            raise InvalidConfigError(f"data.stream must be kstep or legacy, got {stream!r}", details={"field": "data.stream"})
        if split not in ("train", "validation"):
            raise InvalidConfigError(f"split must be train or validation, got {split!r}", details={"field": "split"})
        if stream == "legacy" and split != "train":
            raise InvalidConfigError(
                "the legacy stream has no splits; build the validation stream with stream='kstep'",
                details={"field": "data.stream"},
            )
        buckets = tuple(k_buckets)
        if not buckets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
            raise InvalidConfigError(
                f"training.k_buckets must be strictly increasing positive ints, got {list(buckets)}",
                details={"field": "training.k_buckets"},
            )
        self.k_buckets = buckets
        self.max_len = _check_int("action.max_len", max_len, 1)
        self.stream: StreamMode = stream
        self.split = split
        self.shuffle = shuffle
        longest = 1 if stream == "legacy" else max_rollout_steps(rollout_mix)
        if longest > max_len:
            raise InvalidConfigError(
                f"the rollout mix draws K up to {longest} but action.max_len is {max_len}",
                details={"field": "action.max_len", "value": max_len},
            )
        bucket_for(longest, buckets)
        self.snapshot = snapshot
        if stream == "legacy":
            self.selection = legacy_selection(snapshot)
            self._legacy = LegacyBuilder(self.selection, mix)
            self.per_window = self._legacy.per_window
        else:
            self.selection = split_selection(snapshot, split)
            self._kstep = KStepBuilder(
                self.selection, seed=seed, max_len=max_len, mix=mix, rollout_mix=rollout_mix, edit_type_weights=edit_type_weights
            )
            self.per_window = self._kstep.per_window
        self._check_window_lengths(_check_int("action.max_window_bp", max_window_bp, 1))
        self.tuples_per_epoch = len(self.selection.windows) * self.per_window
        self.fingerprint = self._fingerprint(mix, rollout_mix, edit_type_weights)
        self._perm_cache: dict[int, np.ndarray] = {}
        self._batch = 0
        self._legacy_reset(0)

    @classmethod
    def from_config(
        cls,
        snapshot: Snapshot,
        config: Any,
        *,
        split: Literal["train", "validation"] = "train",
        process_index: int | None = None,
        process_count: int | None = None,
    ) -> TupleStream:
        """The training (or validation) stream a config asks for; validation is always split-aware."""
        return cls(
            snapshot,
            batch_size=config.data.batch_size,
            seed=config.seed,
            stream="kstep" if split == "validation" else config.data.stream,
            split=split,
            k_buckets=config.training.k_buckets,
            max_len=config.action.max_len,
            max_window_bp=config.action.max_window_bp,
            process_index=config.runtime.process_id if process_index is None else process_index,
            process_count=config.runtime.num_processes if process_count is None else process_count,
        )

    def _check_window_lengths(self, max_window_bp: int) -> None:
        """Fail at start-up, naming the row, rather than mid-run in a sampler or the action encoder."""
        shortest = 2 * DEFAULT_EDGE_MARGIN + 1
        for w in self.selection.windows:
            if not shortest <= len(w.sequence) <= max_window_bp:
                raise DatasetError(
                    f"{self.snapshot.root / w.file}:{w.line}: window {w.record_id} is {len(w.sequence)} bp; "
                    f"the stream needs {shortest}..{max_window_bp} bp (edge margins, action.max_window_bp)",
                    details={"path": w.file, "line": w.line, "length": len(w.sequence), "field": "action.max_window_bp"},
                    remediation="drop the window or raise action.max_window_bp (a new position code: retrain)",
                )

    # --- identity --------------------------------------------------------------------------------
    def _fingerprint(self, mix: Sequence[Any], rollout_mix: Sequence[Any], weights: Sequence[Any]) -> str:
        windows = hashlib.sha256("".join(w.window_id for w in self.selection.windows).encode()).hexdigest()
        payload = {
            "snapshot_id": self.snapshot.snapshot_id,
            "windows": windows,
            "stream": self.stream,
            "split": self.split,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "k_buckets": list(self.k_buckets),
            "max_len": self.max_len,
            "shuffle": self.shuffle,
            "mix": [[e.source, e.count] for e in mix],
            "rollout_mix": [[e.steps, e.weight] for e in rollout_mix],
            "edit_type_weights": [[int(e.edit_type), e.weight] for e in weights],
        }
        return "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def rows(self) -> range:
        """Rows of each global batch that this host yields."""
        share = self.batch_size // self.process_count
        return range(self.process_index * share, (self.process_index + 1) * share)

    @property
    def batches_per_epoch(self) -> float:
        return self.tuples_per_epoch / self.batch_size

    # --- kstep -----------------------------------------------------------------------------------
    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perm_cache.get(epoch)
        if perm is None:
            if self.shuffle:
                gen = np.random.Generator(np.random.PCG64(derive_seed(self.seed, _TAG_PERMUTE, epoch)))
                perm = gen.permutation(self.tuples_per_epoch)
            else:
                perm = np.arange(self.tuples_per_epoch)
            self._perm_cache = {epoch: perm, **{e: p for e, p in self._perm_cache.items() if e == epoch - 1}}
        return perm

    def locate(self, position: int) -> tuple[int, int, int]:
        """(epoch, window index, mix slot) of the tuple at a global stream position."""
        epoch, offset = divmod(position, self.tuples_per_epoch)
        window, slot = divmod(int(self._permutation(epoch)[offset]), self.per_window)
        return epoch, window, slot

    def _kstep_batch(self) -> tuple[list[TrainingTuple], int]:
        start = self._batch * self.batch_size
        places = [self.locate(start + r) for r in range(self.batch_size)]
        steps = [self._kstep.drawn_steps(*p) for p in places]
        return [self._kstep.build(*places[r], steps=steps[r]) for r in self.rows], max(steps)

    # --- legacy ----------------------------------------------------------------------------------
    def _legacy_reset(self, epoch: int) -> None:
        self._l_epoch = epoch
        self._l_window = 0
        self._l_slot = 0
        self._l_rng = random.Random(self.seed + epoch)
        self._l_state = self._l_rng.getstate()
        self._l_buffer: list[TrainingTuple] | None = None

    def _legacy_next(self) -> TrainingTuple:
        if self._l_buffer is None:
            self._l_state = self._l_rng.getstate()
            self._l_buffer = self._legacy.window_tuples(self.selection.windows[self._l_window], self._l_rng)
        item = self._l_buffer[self._l_slot]
        self._l_slot += 1
        if self._l_slot == len(self._l_buffer):
            self._l_buffer, self._l_slot = None, 0
            self._l_window += 1
            if self._l_window == len(self.selection.windows):
                self._legacy_reset(self._l_epoch + 1)
        return item

    def _legacy_batch(self) -> tuple[list[TrainingTuple], int]:
        rows = [self._legacy_next() for _ in range(self.batch_size)]
        return [rows[r] for r in self.rows], 1

    # --- public ------------------------------------------------------------------------------------
    def next_batch(self) -> TupleBatch:
        tuples, longest = self._legacy_batch() if self.stream == "legacy" else self._kstep_batch()
        bucket = bucket_for(longest, self.k_buckets)
        steps = np.array([t.steps for t in tuples], dtype=np.int32)
        mask = np.arange(bucket)[None, :] < steps[:, None]
        batch = TupleBatch(
            tuples=tuple(tuples),
            k_bucket=bucket,
            mask=mask,
            loci=np.array([t.locus for t in tuples], dtype=np.int32),
            index=self._batch,
            global_batch_size=self.batch_size,
            process_index=self.process_index,
            process_count=self.process_count,
        )
        self._batch += 1
        return batch

    def __iter__(self) -> Iterator[TupleBatch]:
        return self

    def __next__(self) -> TupleBatch:
        return self.next_batch()

    def take(self, n: int) -> list[TupleBatch]:
        return [self.next_batch() for _ in range(n)]

    def cursor(self) -> dict[str, Any]:
        """Where the next batch starts: small, JSON-serialisable, host-independent."""
        position = self._batch * self.batch_size
        out: dict[str, Any] = {
            "format": CURSOR_FORMAT,
            "stream": self.stream,
            "split": self.split,
            "fingerprint": self.fingerprint,
            "batch": self._batch,
        }
        if self.stream == "kstep":
            epoch, offset = divmod(position, self.tuples_per_epoch)
            out.update(epoch=epoch, position=offset, rng={"kind": "derived", "seed": self.seed})
        else:
            state = self._l_state if self._l_buffer is not None else self._l_rng.getstate()
            version, internal, gauss = state
            out.update(
                epoch=self._l_epoch,
                position=self._l_window * self.per_window + self._l_slot,
                rng={"kind": "python_random", "state": [version, list(internal), gauss]},
            )
        return out

    def restore(self, cursor: Mapping[str, Any]) -> None:
        """Continue from ``cursor`` as if the stream had never stopped."""
        if not isinstance(cursor, Mapping) or cursor.get("format") != CURSOR_FORMAT:
            raise InputError(f"not a tuple-stream cursor (format {CURSOR_FORMAT})", details={"field": "cursor"})
        for key, mine in (("stream", self.stream), ("split", self.split), ("fingerprint", self.fingerprint)):
            if cursor.get(key) != mine:
                raise InputError(
                    f"cursor was taken from a different stream ({key}: {cursor.get(key)!r} != {mine!r})",
                    details={"field": f"cursor.{key}"},
                    remediation="resume with the same snapshot, seed, batch size and stream settings",
                )
        try:
            batch, epoch, position = (int(cursor[k]) for k in ("batch", "epoch", "position"))
            if self.stream == "kstep":
                if epoch * self.tuples_per_epoch + position != batch * self.batch_size:
                    raise ValueError("epoch/position disagree with batch")
                self._batch = batch
                return
            version, internal, gauss = cursor["rng"]["state"]
            state = (int(version), tuple(int(x) for x in internal), gauss)
            window, slot = divmod(position, self.per_window)
            if not 0 <= window < len(self.selection.windows):
                raise ValueError("window index out of range")
            self._l_epoch, self._l_window, self._l_slot = epoch, window, slot
            self._l_rng = random.Random()
            self._l_rng.setstate(state)
            self._l_state, self._l_buffer = state, None
            if slot:
                self._l_buffer = self._legacy.window_tuples(self.selection.windows[window], self._l_rng)
            self._batch = batch
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed tuple-stream cursor ({exc})", details={"field": "cursor"}) from None


__all__ = ["CURSOR_FORMAT", "TupleBatch", "TupleStream", "bucket_for"]
