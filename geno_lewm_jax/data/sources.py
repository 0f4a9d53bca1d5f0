"""Edit sources of the tuple stream: names, the per-window mix, fallbacks, variant lookup.

Each window yields one tuple per mix slot: by default 3 gnomAD variants,
3 synthetic SNVs, 1 synthetic indel and 1 ClinVar variant (RFC-0006's
40/30/20/10 rounded to 8 edits). A source that cannot supply its share hands
the rest to its fallback, and the tuple records the source that supplied it.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence

from geno_lewm_jax.data.actions import EditSpec, RelEdit
from geno_lewm_jax.errors import InputError

SOURCE_GNOMAD_COMMON = "gnomad_common"
SOURCE_SYNTHETIC_SNV = "synthetic_snv"
SOURCE_SYNTHETIC_INDEL = "synthetic_indel"
SOURCE_CLINVAR = "clinvar"
VARIANT_SOURCES = (SOURCE_GNOMAD_COMMON, SOURCE_CLINVAR)


@dataclasses.dataclass(frozen=True, slots=True)
class EditSourceCount:
    """How many tuples one source contributes per window."""

    source: str
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise InputError(f"source must be a non-empty string, got {self.source!r}", details={"field": "source"})
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 0:
            raise InputError(f"count must be an int >= 0, got {self.count!r}", details={"field": "count"})


DEFAULT_EDIT_SOURCE_COUNTS: tuple[EditSourceCount, ...] = (
    EditSourceCount(SOURCE_GNOMAD_COMMON, 3),
    EditSourceCount(SOURCE_SYNTHETIC_SNV, 3),
    EditSourceCount(SOURCE_SYNTHETIC_INDEL, 1),
    EditSourceCount(SOURCE_CLINVAR, 1),
)

DEFAULT_SOURCE_FALLBACKS: dict[str, str] = {
    SOURCE_CLINVAR: SOURCE_SYNTHETIC_SNV,
    SOURCE_GNOMAD_COMMON: SOURCE_SYNTHETIC_SNV,
}
"""Variant sources fall back to synthetic SNVs when a window has too few variants."""

PLACED_ONLY_FALLBACKS: dict[str, str] = {SOURCE_CLINVAR: SOURCE_SYNTHETIC_SNV}
"""The reference trainer's rule when every window is placed: gnomAD has no fallback."""


def check_mix(mix: Sequence[EditSourceCount]) -> tuple[EditSourceCount, ...]:
    """A usable mix: non-empty, typed entries, distinct sources, not all zero."""
    if not mix:
        raise InputError("the edit source mix is empty", details={"field": "mix"})
    seen: set[str] = set()
    for entry in mix:
        if not isinstance(entry, EditSourceCount):
            raise InputError(f"mix entries must be EditSourceCount, got {type(entry).__name__}", details={"field": "mix"})
        if entry.source in seen:
            raise InputError(f"source {entry.source!r} appears twice in the mix", details={"source": entry.source})
        seen.add(entry.source)
    if not any(e.count for e in mix):
        raise InputError("the edit source mix requests no edits", details={"field": "mix"})
    return tuple(mix)


def mix_slots(mix: Sequence[EditSourceCount]) -> tuple[tuple[str, int], ...]:
    """(source, rank within that source) for every tuple of a window, in mix order."""
    return tuple((e.source, rank) for e in check_mix(mix) for rank in range(e.count))


class VariantIndex:
    """Variants grouped by chromosome and sorted by position, for window lookups.

    Chromosomes match by exact name and equal positions keep their input
    order, as in the reference, so candidate lists come out identical.
    """

    def __init__(self, specs: Iterable[EditSpec]) -> None:
        grouped: dict[str, list[EditSpec]] = {}
        for spec in specs:
            grouped.setdefault(spec.chrom, []).append(spec)
        self._by_chrom: dict[str, tuple[list[int], list[EditSpec]]] = {}
        for chrom, items in grouped.items():
            items.sort(key=lambda s: s.pos)
            self._by_chrom[chrom] = ([s.pos for s in items], items)
        self.size = sum(len(v[1]) for v in self._by_chrom.values())

    def candidates(self, chrom: str | None, start_bp: int, end_bp: int) -> list[RelEdit]:
        """Edits whose REF lies wholly in ``[start_bp, end_bp)``, in position order."""
        if chrom is None or chrom not in self._by_chrom:
            return []
        positions, specs = self._by_chrom[chrom]
        lo = bisect.bisect_right(positions, start_bp)
        hi = bisect.bisect_right(positions, end_bp)
        return [s.relative_to(start_bp, end_bp - 1) for s in specs[lo:hi] if s.pos - 1 + len(s.ref) <= end_bp]


__all__ = [
    "DEFAULT_EDIT_SOURCE_COUNTS",
    "DEFAULT_SOURCE_FALLBACKS",
    "PLACED_ONLY_FALLBACKS",
    "SOURCE_CLINVAR",
    "SOURCE_GNOMAD_COMMON",
    "SOURCE_SYNTHETIC_INDEL",
    "SOURCE_SYNTHETIC_SNV",
    "VARIANT_SOURCES",
    "EditSourceCount",
    "VariantIndex",
    "check_mix",
    "mix_slots",
]
