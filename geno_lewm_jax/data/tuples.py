"""Training tuples: (source window, K edits, K target windows, pooling locus).

Two builders share the source mix:

* :class:`LegacyBuilder` is geno-lewm 0.2.1's ``build_training_tuples``:
  one ``random.Random`` shared across a window's sources (and across
  windows by the caller), K = 1, variant candidates shuffled with that RNG.
* :class:`KStepBuilder` makes every tuple independently from
  (seed, epoch, window, slot), so any tuple of any epoch can be rebuilt in
  O(1): the stream can shuffle tuples and resume from a cursor without
  replay. The first edit comes from the slot's source; K is drawn from the
  rollout mix and edits 2..K follow :mod:`rollouts`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
import struct
from collections.abc import Callable, Sequence

from geno_lewm_jax.data.actions import RelEdit, apply_edit
from geno_lewm_jax.data.rollouts import NEIGHBOURHOOD_BP, follow_up_edit, step_targets
from geno_lewm_jax.data.sampling import (
    DEFAULT_EDIT_TYPE_WEIGHTS,
    DEFAULT_ROLLOUT_STEP_MIX,
    EditTypeWeight,
    RolloutStepWeight,
    check_edit_type_weights,
    check_rollout_mix,
    pick_weighted,
)
from geno_lewm_jax.data.selection import Selection
from geno_lewm_jax.data.snapshot import WindowRecord
from geno_lewm_jax.data.sources import (
    DEFAULT_EDIT_SOURCE_COUNTS,
    SOURCE_CLINVAR,
    SOURCE_GNOMAD_COMMON,
    SOURCE_SYNTHETIC_INDEL,
    SOURCE_SYNTHETIC_SNV,
    VARIANT_SOURCES,
    EditSourceCount,
    VariantIndex,
    check_mix,
    mix_slots,
)
from geno_lewm_jax.data.synthetic_edits import indel, uniform_snv
from geno_lewm_jax.errors import DatasetError, InputError


@dataclasses.dataclass(frozen=True, slots=True)
class TrainingTuple:
    """One training example. ``targets[k]`` is the window after ``edits[:k+1]``."""

    window_id: str
    record_id: str
    source: str
    window: str
    chrom: str | None
    start_bp: int
    edits: tuple[RelEdit, ...]
    targets: tuple[str, ...]
    locus: int

    @property
    def steps(self) -> int:
        return len(self.edits)


def _synthetic(source: str, window: WindowRecord, count: int, rng: random.Random) -> list[RelEdit]:
    if source == SOURCE_SYNTHETIC_SNV:
        return uniform_snv(window.sequence, count, rng=rng)
    return indel(window.sequence, count, rng=rng)


def _short_source(window: WindowRecord, source: str, fallback: str | None, needed: int, got: int) -> DatasetError:
    where = f"{window.file}:{window.line} ({window.record_id})"
    if fallback is None:
        return DatasetError(
            f"{where}: source {source!r} gave {got} of {needed} edits and has no fallback",
            details={"path": window.file, "line": window.line, "source": source, "needed": needed, "observed": got},
            remediation="placed windows need 3 gnomAD variants each in legacy mode; use --stream=kstep",
        )
    return DatasetError(
        f"{where}: source {source!r} and its fallback {fallback!r} gave too few edits ({got} of {needed})",
        details={"path": window.file, "line": window.line, "source": source, "fallback": fallback, "needed": needed},
    )


class LegacyBuilder:
    """geno-lewm 0.2.1 tuples: same draws, same order, same errors (as DatasetError)."""

    def __init__(self, selection: Selection, mix: Sequence[EditSourceCount] = DEFAULT_EDIT_SOURCE_COUNTS) -> None:
        self.mix = check_mix(mix)
        self.fallbacks = dict(selection.fallbacks)
        self.variants = {SOURCE_GNOMAD_COMMON: VariantIndex(selection.gnomad), SOURCE_CLINVAR: VariantIndex(selection.clinvar)}
        self.per_window = sum(e.count for e in self.mix)

    def _provide(self, source: str, window: WindowRecord, count: int, rng: random.Random) -> list[RelEdit]:
        if source in self.variants:
            if count == 0 or window.chrom is None:
                return []
            found = self.variants[source].candidates(window.chrom, window.start_bp, window.end_bp)
            rng.shuffle(found)
            return found[:count]
        if source in (SOURCE_SYNTHETIC_SNV, SOURCE_SYNTHETIC_INDEL):
            return _synthetic(source, window, count, rng)
        raise InputError(f"no provider for edit source {source!r}", details={"source": source})

    def window_tuples(self, window: WindowRecord, rng: random.Random) -> list[TrainingTuple]:
        """The window's tuples in mix order, drawing from the shared ``rng``."""
        out = []
        for entry in self.mix:
            if entry.count == 0:
                continue
            got = self._provide(entry.source, window, entry.count, rng)
            picked = [(entry.source, e) for e in got[: entry.count]]
            if len(got) < entry.count:
                fallback = self.fallbacks.get(entry.source)
                if fallback is None:
                    raise _short_source(window, entry.source, None, entry.count, len(got))
                extra = self._provide(fallback, window, entry.count - len(got), rng)
                if len(extra) < entry.count - len(got):
                    raise _short_source(window, entry.source, fallback, entry.count - len(got), len(extra))
                picked += [(fallback, e) for e in extra[: entry.count - len(got)]]
            for source, edit in picked:
                target = apply_edit(window.sequence, edit, preserve_length=True)
                out.append(
                    TrainingTuple(
                        window.window_id, window.record_id, source, window.sequence, window.chrom,
                        window.start_bp, (edit,), (target,), edit.rel_pos,
                    )
                )
        return out


# --- K-step -------------------------------------------------------------------------------------
_TAG_PERMUTE, _TAG_TUPLE, _TAG_STEPS, _TAG_CANDIDATES = 1, 2, 3, 4
_SYNTHETIC_TRIES = 8


def derive_seed(*parts: int) -> int:
    """A 64-bit seed that depends on every part (stable across runs and platforms)."""
    return int.from_bytes(hashlib.blake2b(struct.pack(f"<{len(parts)}Q", *parts), digest_size=8).digest(), "little")


class KStepBuilder:
    """Stateless tuple factory: ``build(epoch, window_index, slot)`` is a pure function."""

    def __init__(
        self,
        selection: Selection,
        *,
        seed: int,
        max_len: int,
        mix: Sequence[EditSourceCount] = DEFAULT_EDIT_SOURCE_COUNTS,
        rollout_mix: Sequence[RolloutStepWeight] = DEFAULT_ROLLOUT_STEP_MIX,
        edit_type_weights: Sequence[EditTypeWeight] = DEFAULT_EDIT_TYPE_WEIGHTS,
        radius: int = NEIGHBOURHOOD_BP,
    ) -> None:
        self.selection = selection
        self.seed = seed
        self.slots = mix_slots(mix)
        known = (*VARIANT_SOURCES, SOURCE_SYNTHETIC_SNV, SOURCE_SYNTHETIC_INDEL)
        unknown = sorted({src for src, _ in self.slots} - set(known))
        if unknown:
            raise InputError(f"unknown edit source(s) {unknown} in the mix; known: {list(known)}", details={"field": "mix"})
        self.rollout_mix = check_rollout_mix(rollout_mix)
        self.edit_type_weights = check_edit_type_weights(edit_type_weights)
        self.radius = radius
        self.max_len = max_len
        self.variants = {
            SOURCE_GNOMAD_COMMON: VariantIndex(selection.gnomad),
            SOURCE_CLINVAR: VariantIndex(selection.clinvar),
        }
        self._candidates = functools.lru_cache(maxsize=8192)(self._candidates_uncached)

    @property
    def per_window(self) -> int:
        return len(self.slots)

    def drawn_steps(self, epoch: int, window_index: int, slot: int) -> int:
        """K drawn for a tuple (the built tuple may stop earlier); cheap, for K bucketing."""
        rng = random.Random(derive_seed(self.seed, _TAG_STEPS, epoch, window_index, slot))
        return min(pick_weighted(rng, self.rollout_mix).steps, self.max_len)

    def _candidates_uncached(self, source: str, epoch: int, window_index: int) -> tuple[RelEdit, ...]:
        window = self.selection.windows[window_index]
        found = [
            e
            for e in self.variants[source].candidates(window.chrom, window.start_bp, window.end_bp)
            if self.selection.allows(window, e)
        ]
        random.Random(derive_seed(self.seed, _TAG_CANDIDATES, epoch, window_index, VARIANT_SOURCES.index(source))).shuffle(found)
        return tuple(found)

    def _synthetic_first(self, source: str, window: WindowRecord, rng: random.Random) -> RelEdit:
        for _ in range(_SYNTHETIC_TRIES):
            edit = _synthetic(source, window, 1, rng)[0]
            if self.selection.allows(window, edit):
                return edit
        raise DatasetError(
            f"{window.file}:{window.line}: every synthetic edit drawn for {window.record_id} is a reserved variant",
            details={"path": window.file, "line": window.line},
        )

    def build(self, epoch: int, window_index: int, slot: int, steps: int | None = None) -> TrainingTuple:
        """The tuple; ``steps`` may pass in :meth:`drawn_steps` when the caller already has it."""
        window = self.selection.windows[window_index]
        source, rank = self.slots[slot]
        rng = random.Random(derive_seed(self.seed, _TAG_TUPLE, epoch, window_index, slot))
        first: RelEdit | None = None
        if source in self.variants:
            found = self._candidates(source, epoch, window_index)
            if rank < len(found):
                first = found[rank]
            else:
                fallback = self.selection.fallbacks.get(source)
                if fallback is None:
                    raise _short_source(window, source, None, rank + 1, len(found))
                source = fallback
        if first is None:
            if source not in (SOURCE_SYNTHETIC_SNV, SOURCE_SYNTHETIC_INDEL):
                raise InputError(f"no provider for edit source {source!r}", details={"source": source})
            first = self._synthetic_first(source, window, rng)
        edits = [first]
        allowed: Callable[[RelEdit], bool] = lambda e: self.selection.allows(window, e)  # noqa: E731
        if steps is None:
            steps = self.drawn_steps(epoch, window_index, slot)
        for _ in range(steps - 1):
            kind = pick_weighted(rng, self.edit_type_weights).edit_type
            nxt = follow_up_edit(window.sequence, edits, kind, rng, allowed=allowed, radius=self.radius)
            if nxt is None:
                break
            edits.append(nxt)
        return TrainingTuple(
            window.window_id, window.record_id, source, window.sequence, window.chrom, window.start_bp,
            tuple(edits), step_targets(window.sequence, edits), first.rel_pos,
        )


__all__ = ["KStepBuilder", "LegacyBuilder", "TrainingTuple", "derive_seed"]
