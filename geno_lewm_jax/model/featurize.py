"""Host-side featurisation of window-relative edits into fixed-shape arrays.

The action encoder runs inside jit, so everything that needs Python strings
(reading edit objects, cutting bases into 6-mers) happens here, once, on the
host. The result is a small immutable pytree of numpy arrays whose shapes
depend only on (B, K), so a padded batch never triggers a recompile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from flax import struct

from geno_lewm_jax.errors import InputError, InvalidEditError, UnsupportedEditError

MAX_BASES = 16
"""Longest ref/alt string the 6-mer tokenizer takes (longer edits are structural variants)."""
KMER = 6
SLOTS = 4
PAD_ID = 4**KMER
"""Token id of an empty 6-mer slot (also padding); row PAD_ID of the 6-mer table is zero."""
NUM_EDIT_TYPES = 6
DEFAULT_MAX_WINDOW_BP = 12_288

# Byte -> 2-bit base code (A=0, C=1, G=2, T=3); 255 marks a byte that is not a base.
_BASE_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _BASE_CODE[_b] = _i
_PLACE = (4 ** np.arange(KMER - 1, -1, -1)).astype(np.int32)  # big-endian base-4 digits
_SLOT_START = np.arange(SLOTS, dtype=np.int64) * KMER


@struct.dataclass
class EditFeatures:
    """Per-step edit features, left-aligned and padded to K steps.

    rel_pos, edit_type: int32 [B, K]; ref_ids, alt_ids: int32 [B, K, 4]
    (6-mer ids, PAD_ID for empty slots); mask: bool [B, K], True on real edits.
    Padded steps hold rel_pos 0, edit_type 0 and PAD_ID ids.
    """

    rel_pos: Any
    edit_type: Any
    ref_ids: Any
    alt_ids: Any
    mask: Any

    @property
    def shape(self) -> tuple[int, int]:
        """(B, K)."""
        return tuple(self.mask.shape)  # type: ignore[return-value]

    def padded(self, k: int) -> "EditFeatures":
        """The same features padded with empty steps up to K = k (numpy only)."""
        _, current = self.shape
        k = _check_k(k, longest=current)
        if k == current:
            return self

        def grow(a: Any, fill: int) -> np.ndarray:
            a = np.asarray(a)
            widths = [(0, 0), (0, k - current)] + [(0, 0)] * (a.ndim - 2)
            return np.pad(a, widths, constant_values=fill)

        return EditFeatures(
            rel_pos=grow(self.rel_pos, 0),
            edit_type=grow(self.edit_type, 0),
            ref_ids=grow(self.ref_ids, PAD_ID),
            alt_ids=grow(self.alt_ids, PAD_ID),
            mask=grow(self.mask, False),
        )


def _check_k(k: Any, *, longest: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(
            f"k must be a positive integer, got {k!r}",
            details={"field": "k", "value": repr(k)},
        )
    if k < longest:
        raise InputError(
            f"k={k} is shorter than the longest row ({longest} edits)",
            details={"field": "k", "k": int(k), "longest_row": longest},
            remediation="Pass k >= the longest row, or split the row.",
        )
    return int(k)


def featurize_edits(
    batch: Sequence[Sequence[Any]],
    *,
    k: int | None = None,
    max_window_bp: int = DEFAULT_MAX_WINDOW_BP,
) -> EditFeatures:
    """Turn B ragged rows of edits into EditFeatures padded to K steps.

    Each edit needs ``rel_pos``, ``edit_type``, ``ref_bases`` and ``alt_bases``
    (``geno_lewm.action.RelEdit`` qualifies). Errors match the reference
    tokenizer's: bases longer than 16 -> UnsupportedEditError, rel_pos outside
    [0, max_window_bp) -> InputError, non-ACGT or empty bases -> InvalidEditError.
    """
    if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence) or len(batch) == 0:
        raise InputError(
            "batch must be a non-empty sequence of rows (each a sequence of edits)",
            details={"field": "batch", "type": type(batch).__name__},
        )
    rows: list[Sequence[Any]] = []
    for b, row in enumerate(batch):
        if hasattr(row, "rel_pos"):
            raise InputError(
                f"batch[{b}] is a single edit, not a row of edits",
                details={"field": f"batch[{b}]"},
                remediation="Wrap a single row in a list: featurize_edits([edits]).",
            )
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) == 0:
            raise InputError(
                f"batch[{b}] must be a non-empty sequence of edits",
                details={"field": f"batch[{b}]", "type": type(row).__name__},
            )
        rows.append(row)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    k = _check_k(int(lengths.max()) if k is None else k, longest=int(lengths.max()))
    if isinstance(max_window_bp, bool) or not isinstance(max_window_bp, int) or max_window_bp < 1:
        raise InputError("max_window_bp must be a positive integer", details={"field": "max_window_bp"})

    where: list[tuple[int, int]] = []
    rel_pos: list[int] = []
    types: list[int] = []
    refs: list[str] = []
    alts: list[str] = []
    for b, row in enumerate(rows):
        for j, edit in enumerate(row):
            try:
                pos, etype, ref, alt = edit.rel_pos, edit.edit_type, edit.ref_bases, edit.alt_bases
            except AttributeError as exc:
                raise InvalidEditError(
                    f"batch[{b}][{j}] is not an edit: {exc}",
                    details={"field": f"batch[{b}][{j}]", "type": type(edit).__name__},
                ) from None
            if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)) or pos < 0:
                raise InvalidEditError(
                    f"batch[{b}][{j}].rel_pos must be a non-negative int, got {pos!r}",
                    details={"field": f"batch[{b}][{j}].rel_pos", "value": repr(pos)},
                )
            try:
                etype = int(etype)
            except (TypeError, ValueError):
                etype = -1
            if not 0 <= etype < NUM_EDIT_TYPES:
                raise InvalidEditError(
                    f"batch[{b}][{j}].edit_type must be an EditType (0..5), got {edit.edit_type!r}",
                    details={"field": f"batch[{b}][{j}].edit_type", "value": repr(edit.edit_type)},
                )
            for name, bases in (("ref_bases", ref), ("alt_bases", alt)):
                if not isinstance(bases, str):
                    raise InvalidEditError(
                        f"batch[{b}][{j}].{name} must be a str, got {type(bases).__name__}",
                        details={"field": f"batch[{b}][{j}].{name}"},
                    )
            where.append((b, j))
            rel_pos.append(int(pos))
            types.append(etype)
            refs.append(ref)
            alts.append(alt)

    ref_len = np.fromiter(map(len, refs), dtype=np.int64, count=len(refs))
    alt_len = np.fromiter(map(len, alts), dtype=np.int64, count=len(alts))
    # Same order as the reference: ref lengths, alt lengths, then the position range.
    for name, lens in (("ref_bases", ref_len), ("alt_bases", alt_len)):
        too_long = np.flatnonzero(lens > MAX_BASES)
        if too_long.size:
            b, j = where[too_long[0]]
            raise UnsupportedEditError(
                f"batch[{b}][{j}].{name} has {int(lens[too_long[0]])} bases; at most {MAX_BASES} are supported",
                details={"field": f"batch[{b}][{j}].{name}", "length": int(lens[too_long[0]]), "v1_max_len": MAX_BASES},
                remediation="Structural variants (> 16 bp) are out of scope for the 6-mer action encoder.",
            )
    ref_ids = _kmer_ids(refs, ref_len, "ref_bases", where)
    alt_ids = _kmer_ids(alts, alt_len, "alt_bases", where)
    pos = np.asarray(rel_pos, dtype=np.int64)
    outside = np.flatnonzero(pos >= max_window_bp)
    if outside.size:
        b, j = where[outside[0]]
        raise InputError(
            f"batch[{b}][{j}].rel_pos={int(pos[outside[0]])} must fall inside max_window_bp={max_window_bp}",
            details={"field": f"batch[{b}][{j}].rel_pos", "rel_pos": int(pos[outside[0]]), "max_window_bp": max_window_bp},
        )

    bsz = len(rows)
    out_rel = np.zeros((bsz, k), np.int32)
    out_type = np.zeros((bsz, k), np.int32)
    out_ref = np.full((bsz, k, SLOTS), PAD_ID, np.int32)
    out_alt = np.full((bsz, k, SLOTS), PAD_ID, np.int32)
    mask = np.arange(k)[None, :] < lengths[:, None]
    out_rel[mask] = pos
    out_type[mask] = types
    out_ref[mask] = ref_ids
    out_alt[mask] = alt_ids
    return EditFeatures(rel_pos=out_rel, edit_type=out_type, ref_ids=out_ref, alt_ids=out_alt, mask=mask)


def _kmer_ids(strings: list[str], lengths: np.ndarray, name: str, where: list[tuple[int, int]]) -> np.ndarray:
    """[N, 4] 6-mer ids: each chunk right-padded with A, base-4 big-endian; empty chunks PAD_ID."""
    n = len(strings)
    width = SLOTS * KMER
    blob = "".join(s.ljust(width, "A") for s in strings).encode("ascii", errors="replace")
    codes = _BASE_CODE[np.frombuffer(blob, dtype=np.uint8).reshape(n, width)]
    bad = (codes == 255).any(axis=1) | (lengths == 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        b, j = where[i]
        value = strings[i]
        bad_chars = sorted(set(value) - set("ACGT"))
        reason = "must be non-empty" if not value else f"contains characters other than uppercase A/C/G/T {bad_chars}"
        raise InvalidEditError(
            f"batch[{b}][{j}].{name} {reason}",
            details={"field": f"batch[{b}][{j}].{name}", "value": value, "bad_chars": bad_chars},
            remediation="Bases must be one of A, C, G, T (no N, IUPAC codes or lowercase).",
        )
    ids = (codes.reshape(n, SLOTS, KMER).astype(np.int32) * _PLACE).sum(axis=-1, dtype=np.int32)
    ids[lengths[:, None] <= _SLOT_START[None, :]] = PAD_ID
    return ids
