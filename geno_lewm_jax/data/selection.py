"""Which windows and variants a stream may use: the split policy.

``split_selection`` is the default and fixes the reference's leak
(training.md §15): the 0.2.1 trainer reads every window file and every
variant shard whatever its split, so eval ClinVar rows and holdout
chromosomes become training edits. Here a stream of role R reads only
windows and shards of splits with role R; windows on manifest
``holdout_chroms`` are dropped; and any variant that also appears in a split
of another role (eval ClinVar, holdout, validation for training) is blocked,
so it can reach the stream neither as a real variant nor as a synthetic edit
that happens to coincide with it.

``legacy_selection`` reproduces the reference for parity runs, leak included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from geno_lewm_jax.data.actions import EditSpec, RelEdit
from geno_lewm_jax.data.snapshot import MANIFEST_NAME, Snapshot, SplitRole, WindowRecord, file_kind, normalize_chrom
from geno_lewm_jax.data.sources import DEFAULT_SOURCE_FALLBACKS, PLACED_ONLY_FALLBACKS
from geno_lewm_jax.errors import DatasetError

VariantKey = tuple[str, int, str, str]


def variant_key(chrom: str, pos: int, ref: str, alt: str) -> VariantKey:
    return (normalize_chrom(chrom), pos, ref, alt)


def edit_key(window: WindowRecord, edit: RelEdit) -> VariantKey | None:
    """Genome key of a window-relative edit; None for an unplaced window."""
    if window.chrom is None:
        return None
    return variant_key(window.chrom, window.start_bp + edit.rel_pos + 1, edit.ref_bases, edit.alt_bases)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The inputs of one stream."""

    name: str
    windows: tuple[WindowRecord, ...]
    gnomad: tuple[EditSpec, ...]
    clinvar: tuple[EditSpec, ...]
    fallbacks: Mapping[str, str]
    blocked: frozenset[VariantKey]
    dropped: Mapping[str, int]

    def allows(self, window: WindowRecord, edit: RelEdit) -> bool:
        """False when the edit is a variant reserved for another split."""
        if not self.blocked:
            return True
        return edit_key(window, edit) not in self.blocked


def legacy_selection(snapshot: Snapshot) -> Selection:
    """The reference trainer's inputs: placed windows if any (else carbon), all shards, all splits."""
    placed = tuple(w for w in snapshot.windows if file_kind(w.file) == "placed")
    windows = placed or tuple(w for w in snapshot.windows if file_kind(w.file) == "carbon")
    manifest = snapshot.root / MANIFEST_NAME
    if not windows:
        raise DatasetError(
            f"{manifest}: no placed/*.jsonl or carbon/*.jsonl window rows; there is nothing to train on",
            details={"path": str(manifest)},
        )
    gnomad = tuple(e for s in snapshot.shards_of("gnomad") for e in s.edits)
    if not gnomad:
        raise DatasetError(
            f"{manifest}: legacy streams need at least one gnomAD variant (geno-lewm 0.2.1 refuses to train without one)",
            details={"path": str(manifest)},
        )
    clinvar = tuple(e for s in snapshot.shards_of("clinvar") for e in s.edits)
    fallbacks = PLACED_ONLY_FALLBACKS if all(w.chrom is not None for w in windows) else DEFAULT_SOURCE_FALLBACKS
    return Selection("legacy", windows, gnomad, clinvar, dict(fallbacks), frozenset(), {})


def split_selection(snapshot: Snapshot, role: SplitRole = "train") -> Selection:
    """Windows and variants of one split role, with holdouts and foreign variants removed."""
    if role not in ("train", "validation"):
        raise DatasetError(f"streams read the train or validation splits, not {role!r}", details={"role": role})
    usable = {role, "train"} if role == "validation" else {role}
    blocked = frozenset(
        variant_key(*spec.key) for shard in snapshot.shards if shard.file.role not in usable for spec in shard.edits
    )
    in_role = [w for w in snapshot.windows if w.role == role]
    windows = tuple(w for w in in_role if not snapshot.is_holdout_chrom(w.chrom))
    dropped = {"holdout_windows": len(in_role) - len(windows), "blocked_variants": 0, "holdout_variants": 0}
    picked: dict[str, list[EditSpec]] = {"gnomad": [], "clinvar": []}
    for shard in snapshot.shards:
        if shard.file.role != role:
            continue
        for spec in shard.edits:
            if snapshot.is_holdout_chrom(spec.chrom):
                dropped["holdout_variants"] += 1
            elif variant_key(*spec.key) in blocked:
                dropped["blocked_variants"] += 1
            else:
                picked[shard.kind].append(spec)
    if not windows:
        files = sorted({f.path for f in snapshot.files if f.role == role and f.kind in ("placed", "carbon")})
        raise DatasetError(
            f"{snapshot.root / MANIFEST_NAME}: the {role} split has no usable windows"
            + (f" (files: {', '.join(files)}; {dropped['holdout_windows']} rows are on holdout chromosomes)" if files else ""),
            details={"path": str(snapshot.root / MANIFEST_NAME), "role": role, "files": files},
            remediation=f"add placed/ or carbon/ window files to a split named {role}*",
        )
    return Selection(
        role, windows, tuple(picked["gnomad"]), tuple(picked["clinvar"]), dict(DEFAULT_SOURCE_FALLBACKS), blocked, dropped
    )


__all__ = ["Selection", "VariantKey", "edit_key", "legacy_selection", "split_selection", "variant_key"]
