"""From stream tuples to device batches: Carbon states, per-step targets and edit features.

``encode_training_batch`` pools every distinct (window, locus) pair of a batch
once (a source shared by several rows, or a target equal to another row's, is
encoded a single time), then gathers the rows: in numpy when the features are
in host memory, on the accelerator otherwise. Without a feature cache
the pooled matrix arrives from torch through DLPack with no copy; with one,
cached rows are read back and only the misses go through Carbon.

``BatchProducer`` runs that encoding on a background thread, a few batches
ahead of the jitted step, and tags each batch with the stream cursor taken
right after it so a checkpoint records exactly where training stands.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.model import featurize_edits
from geno_lewm_jax.training.trainer import TrainerBatch

LEGACY_CONTRACT = "legacy_raw_v1"


class StateEncoder(Protocol):
    """What training needs from the Carbon bridge (``bridge.CarbonEncoder`` satisfies it)."""

    d_state: int
    contract: str

    def encode_batch(self, sequences: Sequence[str], loci: Sequence[int | None]) -> np.ndarray: ...

    def encode_batch_jax(self, sequences: Sequence[str], loci: Sequence[int | None]) -> Any: ...


def state_pairs(tup: Any, contract: str) -> list[tuple[str, int | None]]:
    """(window, locus) of a tuple's source then each target.

    Under l2_normalized_v2 every state pools at the tuple's locus; legacy_raw_v1
    pools the source over the whole window as geno-lewm 0.2.1 did.
    """
    source_locus = None if contract == LEGACY_CONTRACT else int(tup.locus)
    return [(tup.window, source_locus)] + [(target, int(tup.locus)) for target in tup.targets]


def encode_training_batch(
    *,
    encoder: StateEncoder,
    tuples: Sequence[Any],
    source_windows: Mapping[str, str] | None = None,
    k: int | None = None,
    max_window_bp: int = 12288,
    encode_fn: Callable[[Sequence[str], Sequence[int | None]], Any] | None = None,
) -> TrainerBatch:
    """A ``TrainerBatch`` for stream tuples: state [B,S], targets [B,K,S], features, mask [B,K].

    ``source_windows`` (window id -> sequence) overrides the tuples' own source
    sequences, as in the reference signature. ``k`` pads steps to a bucket.
    ``encode_fn`` replaces the encoder call (the feature cache path).
    """
    if not tuples:
        raise InputError("cannot encode an empty batch of tuples", details={"field": "tuples"})
    contract = encoder.contract
    index: dict[tuple[str, int | None], int] = {}
    sequences: list[str] = []
    loci: list[int | None] = []
    rows: list[list[int]] = []
    for tup in tuples:
        pairs = state_pairs(tup, contract)
        if source_windows is not None:
            pairs[0] = (source_windows[tup.window_id], pairs[0][1])
        row = []
        for pair in pairs:
            slot = index.get(pair)
            if slot is None:
                slot = index[pair] = len(sequences)
                sequences.append(pair[0])
                loci.append(pair[1])
            row.append(slot)
        rows.append(row)
    longest = max(len(r) - 1 for r in rows)
    k = longest if k is None else k
    if k < longest:
        raise InputError(f"k={k} is shorter than the longest rollout ({longest} steps)", details={"field": "k"})
    pooled = (encode_fn or encoder.encode_batch_jax)(sequences, loci)
    source_idx = np.array([r[0] for r in rows], dtype=np.int32)
    target_idx = np.zeros((len(rows), k), dtype=np.int32)
    mask = np.zeros((len(rows), k), dtype=bool)
    for b, r in enumerate(rows):
        target_idx[b, : len(r) - 1] = r[1:]
        mask[b, : len(r) - 1] = True
    if _on_host(pooled):
        # Host features (the cache, a CPU encoder) are gathered in numpy (a CPU jax.Array is read
        # in place) and placed once by the trainer's prepare.
        pooled = np.asarray(pooled, dtype=np.float32)
        state = pooled[source_idx]
        targets = np.where(mask[..., None], pooled[target_idx], np.float32(0.0))
    else:
        state, targets = _gather_on_device(pooled, source_idx, target_idx, mask)
    features = featurize_edits([t.edits for t in tuples], k=k, max_window_bp=max_window_bp)
    return TrainerBatch(state=state, targets=targets, features=features, action_mask=mask)


def _on_host(pooled: Any) -> bool:
    """Whether pooled features live in host memory (numpy, or a jax.Array on CPU devices)."""
    if isinstance(pooled, np.ndarray):
        return True
    devices = getattr(pooled, "devices", None)
    return devices is not None and all(d.platform == "cpu" for d in devices())


@jax.jit
def _gather_on_device(pooled: jax.Array, source_idx: jax.Array, target_idx: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows of accelerator-resident features, as one program per shape (eager indexing would
    compile its own half-dozen small programs for every distinct count of pooled rows)."""
    pooled = pooled.astype(jnp.float32)
    return pooled[source_idx], jnp.where(mask[..., None], pooled[target_idx], jnp.float32(0.0))


@dataclasses.dataclass(frozen=True)
class ProducedBatch:
    """A device batch plus where the stream stood right after it."""

    batch: TrainerBatch
    cursor: dict[str, Any]
    n_tuples: int


class BatchProducer:
    """Encodes upcoming batches on a background thread, ``depth`` ahead of the consumer.

    ``prepare`` (the trainer's) pads each batch to its K bucket and places it on
    the devices on this thread too, so the transfer of batch N+1 starts before
    the loop waits for step N. ``timeline`` (optional) receives the thread's
    ``encode``, ``prepare`` and ``handoff`` seconds. Errors raised while producing
    are re-raised by :meth:`next` in the training thread, so a bad window
    surfaces as the same typed error.
    """

    def __init__(
        self,
        stream: Any,
        encode: Callable[[Any], TrainerBatch],
        *,
        depth: int = 2,
        prepare: Callable[[TrainerBatch], TrainerBatch] | None = None,
        timeline: Any = None,
    ) -> None:
        self._stream = stream
        self._encode = encode
        self._prepare = prepare
        self._timeline = timeline
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carbon-producer", daemon=True)
        self._thread.start()

    def _timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        if self._timeline is None:
            return fn()
        with self._timeline.phase(phase):
            return fn()

    def _produce(self) -> ProducedBatch:
        tuples_batch = self._stream.next_batch()
        cursor = self._stream.cursor()
        batch = self._timed("encode", lambda: self._encode(tuples_batch))
        if self._prepare is not None:
            batch = self._timed("prepare", lambda: self._prepare(batch))
        return ProducedBatch(batch, cursor, len(tuples_batch.tuples))

    def _hand_off(self, item: ProducedBatch) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._produce()
                self._timed("handoff", lambda: self._hand_off(item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._queue.put(exc)

    def next(self) -> ProducedBatch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)  # a daemon thread: an encode in flight is abandoned, not awaited
