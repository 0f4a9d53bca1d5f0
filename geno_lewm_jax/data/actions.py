"""Edits (actions) and how they rewrite a DNA window.

An :class:`EditSpec` is a variant in genome coordinates (VCF style: 1-based
``pos``, explicit REF/ALT, indels carry the anchor base). A :class:`RelEdit`
is the same edit relative to a window, which is all the model ever sees.
:func:`apply_edit` / :func:`apply_edits` produce the edited window that the
target state is encoded from. Semantics and errors follow geno-lewm 0.2.1 so
that tuples built here equal the reference's tuples.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from geno_lewm_jax.errors import (
    InvalidEditError,
    OutOfWindowError,
    OverlappingEditsError,
    UnsupportedEditError,
    WindowMismatchError,
)

V1_MAX_LEN = 16
"""Longest REF or ALT allele a v1 edit may carry; longer ones are structural variants."""

PAD_BASE = "N"
"""Filler used when an edited window is padded back to its original length."""

_ACGT = frozenset("ACGT")


class EditType(enum.IntEnum):
    """Edit category, a pure function of the allele lengths (ids match the reference)."""

    SNV = 0
    INS = 1
    DEL = 2
    MNV = 3
    INDEL = 4
    SV = 5


def edit_type_for(ref: str, alt: str) -> EditType:
    """Classify by (len(ref), len(alt)) under the VCF anchor-base convention.

    ``A>AT`` is an insertion and ``AT>G`` a deletion even though the first
    bases differ: only lengths matter.
    """
    n_ref, n_alt = len(ref), len(alt)
    if n_ref > V1_MAX_LEN or n_alt > V1_MAX_LEN:
        return EditType.SV
    if n_ref == 1:
        return EditType.SNV if n_alt == 1 else EditType.INS
    if n_alt == 1:
        return EditType.DEL
    return EditType.MNV if n_ref == n_alt else EditType.INDEL


def _check_alleles(field: str, bases: object) -> None:
    if not isinstance(bases, str) or not bases:
        raise InvalidEditError(
            f"{field} must be a non-empty base string, got {bases!r}",
            details={"field": field, "value": bases},
            remediation="give at least one of A, C, G, T",
        )
    if bases != bases.upper():
        raise InvalidEditError(
            f"{field} must be uppercase, got {bases!r}",
            details={"field": field, "value": bases},
            remediation="uppercase the alleles before building the edit",
        )
    bad = set(bases) - _ACGT
    if bad:
        raise InvalidEditError(
            f"{field} may only hold A, C, G, T; found {''.join(sorted(bad))!r} in {bases!r}",
            details={"field": field, "value": bases, "bad_chars": sorted(bad)},
            remediation="N, IUPAC codes and symbolic alleles are not edits",
        )


def _check_int(field: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEditError(
            f"{field} must be an int, got {type(value).__name__}",
            details={field: value, "type": type(value).__name__},
        )
    if value < minimum:
        raise InvalidEditError(f"{field} must be >= {minimum}, got {value}", details={field: value})


@dataclasses.dataclass(frozen=True, slots=True)
class EditSpec:
    """A variant in absolute coordinates; ``edit_type`` is always derived, never trusted."""

    chrom: str
    pos: int
    ref: str
    alt: str
    edit_type: EditType = EditType.SNV

    def __post_init__(self) -> None:
        if not isinstance(self.chrom, str) or not self.chrom:
            raise InvalidEditError(f"chrom must be a non-empty string, got {self.chrom!r}", details={"chrom": self.chrom})
        _check_int("pos", self.pos, minimum=1)
        _check_alleles("ref", self.ref)
        _check_alleles("alt", self.alt)
        if self.ref == self.alt:
            raise InvalidEditError(
                f"ref and alt are both {self.ref!r}; an edit must change something",
                details={"ref": self.ref, "alt": self.alt},
            )
        kind = edit_type_for(self.ref, self.alt)
        if kind is EditType.SV:
            raise UnsupportedEditError(
                f"alleles of length {len(self.ref)}/{len(self.alt)} exceed {V1_MAX_LEN} bp (a structural variant)",
                details={
                    "ref_len": len(self.ref),
                    "alt_len": len(self.alt),
                    "v1_max_len": V1_MAX_LEN,
                    "edit_type": int(EditType.SV),
                },
                remediation=f"split the variant into edits of at most {V1_MAX_LEN} bp upstream",
            )
        object.__setattr__(self, "edit_type", kind)

    @property
    def key(self) -> tuple[str, int, str, str]:
        """Identity used for split-leakage checks."""
        return (self.chrom, self.pos, self.ref, self.alt)

    def relative_to(self, window_start_bp: int, window_end_bp: int) -> RelEdit:
        """The edit relative to a window given by 0-based *inclusive* bounds."""
        if window_end_bp < window_start_bp:
            raise InvalidEditError(
                f"window end {window_end_bp} lies before its start {window_start_bp}",
                details={"start": window_start_bp, "end": window_end_bp},
            )
        rel_pos = self.pos - 1 - window_start_bp
        if rel_pos < 0 or rel_pos + len(self.ref) > window_end_bp - window_start_bp + 1:
            raise OutOfWindowError(
                f"{self.chrom}:{self.pos} {self.ref}>{self.alt} does not fit in window [{window_start_bp}, {window_end_bp}]",
                details={
                    "pos": self.pos,
                    "ref_len": len(self.ref),
                    "window_start_bp": window_start_bp,
                    "window_end_bp": window_end_bp,
                    "rel_pos": rel_pos,
                },
                remediation="centre the window on the edit or drop the edit",
            )
        return RelEdit(rel_pos, self.edit_type, self.ref, self.alt)


@dataclasses.dataclass(frozen=True, slots=True)
class RelEdit:
    """An edit relative to its window: what the action encoder consumes.

    Like the reference, it does not check ref != alt, the 16 bp cap or an
    upper bound on ``rel_pos``; the action encoder enforces those.
    """

    rel_pos: int
    edit_type: EditType
    ref_bases: str
    alt_bases: str

    def __post_init__(self) -> None:
        _check_int("rel_pos", self.rel_pos, minimum=0)
        if not isinstance(self.edit_type, EditType):
            try:
                object.__setattr__(self, "edit_type", EditType(int(self.edit_type)))
            except (TypeError, ValueError):
                raise InvalidEditError(
                    f"edit_type {self.edit_type!r} is not an EditType", details={"edit_type": self.edit_type}
                ) from None
        _check_alleles("ref_bases", self.ref_bases)
        _check_alleles("alt_bases", self.alt_bases)

    @property
    def end(self) -> int:
        """Exclusive end of the REF span in window coordinates."""
        return self.rel_pos + len(self.ref_bases)

    def to_dict(self) -> dict[str, object]:
        return {
            "rel_pos": self.rel_pos,
            "edit_type": int(self.edit_type),
            "ref_bases": self.ref_bases,
            "alt_bases": self.alt_bases,
        }


def restore_length(edited: str, length: int, *, locus: int) -> str:
    """Trim or N-pad ``edited`` back to ``length`` on the side away from ``locus``.

    An edit in the left half (``locus < length // 2``) keeps the left end
    fixed and changes the right end; otherwise the right end stays fixed.
    """
    excess = len(edited) - length
    if excess == 0:
        return edited
    keep_left = locus < length // 2
    if excess > 0:
        return edited[:length] if keep_left else edited[excess:]
    pad = PAD_BASE * (-excess)
    return edited + pad if keep_left else pad + edited


def apply_edit(window: str, edit: RelEdit, *, preserve_length: bool = False) -> str:
    """``window`` with ``edit`` applied; REF must match the window (any case)."""
    start, end = edit.rel_pos, edit.rel_pos + len(edit.ref_bases)
    if start < 0 or end > len(window):
        raise OutOfWindowError(
            f"edit at rel_pos {start} with a {len(edit.ref_bases)} bp REF runs outside a {len(window)} bp window",
            details={"rel_pos": start, "ref_len": len(edit.ref_bases), "window_len": len(window)},
        )
    observed = window[start:end]
    if observed.upper() != edit.ref_bases.upper():
        raise WindowMismatchError(
            f"window holds {observed!r} at rel_pos {start}, edit expects REF {edit.ref_bases!r}",
            details={"rel_pos": start, "expected_ref": edit.ref_bases, "observed_ref": observed},
            remediation="check the window's coordinates and assembly against the variant's",
        )
    edited = window[:start] + edit.alt_bases + window[end:]
    return restore_length(edited, len(window), locus=start) if preserve_length else edited


def check_disjoint(edits: Sequence[RelEdit]) -> None:
    """Raise :class:`OverlappingEditsError` when two REF spans share a base (touching is fine)."""
    spans = sorted(((e.rel_pos, e.rel_pos + len(e.ref_bases), i) for i, e in enumerate(edits)), key=lambda s: s[0])
    for (s1, e1, i1), (s2, e2, i2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise OverlappingEditsError(
                f"edits {i1} [{s1}, {e1}) and {i2} [{s2}, {e2}) overlap",
                details={"first_index": i1, "first_interval": [s1, e1], "second_index": i2, "second_interval": [s2, e2]},
                remediation="split the haplotype into edits that do not share bases",
            )


def apply_edits(window: str, edits: Sequence[RelEdit], *, preserve_length: bool = False) -> str:
    """Apply disjoint edits given in source-window coordinates (order does not matter).

    Edits go in right to left so earlier positions stay valid; a single final
    length restore uses the leftmost edit as the locus.
    """
    if not edits:
        return window
    check_disjoint(edits)
    out = window
    for edit in sorted(edits, key=lambda e: e.rel_pos, reverse=True):
        out = apply_edit(out, edit)
    if not preserve_length:
        return out
    return restore_length(out, len(window), locus=min(e.rel_pos for e in edits))


__all__ = [
    "PAD_BASE",
    "V1_MAX_LEN",
    "EditSpec",
    "EditType",
    "RelEdit",
    "apply_edit",
    "apply_edits",
    "check_disjoint",
    "edit_type_for",
    "restore_length",
]
