"""K-step rollouts: follow-up edits near the first edit, and one target per step.

Rule: every state of a tuple is pooled at one locus, the first edit's
``rel_pos``. Edits 2..K are synthetic, of types drawn from the edit-type
weights, placed with their start within ``radius`` bp of that locus (the
pooled neighbourhood: 8 tokens x 6 bp = 48 bp by default), kept ``margin`` bp
from the window ends, on A/C/G/T only, and never sharing a base with an
earlier edit. Target k is the source window after edits 1..k, restored to
the source length on the side away from the locus, so all targets of a
tuple share one frame. A step that finds no valid place in ``attempts``
draws ends the rollout early.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from geno_lewm_jax.data.actions import V1_MAX_LEN, EditType, RelEdit, apply_edit, restore_length
from geno_lewm_jax.data.synthetic_edits import OTHER_BASES, draw_length, length_table, random_bases

NEIGHBOURHOOD_BP = 48
EDGE_MARGIN = 64
ATTEMPTS = 16
_GEOMETRIC = length_table(None)
_MNV_LENGTHS = length_table({k: 1.0 for k in range(2, 9)})
_INDEL_LENGTHS = tuple(range(2, 9))


def _acgt(segment: str) -> bool:
    return all(b in OTHER_BASES for b in segment)


def _propose(window: str, pos: int, kind: EditType, rng: random.Random) -> RelEdit | None:
    """One candidate edit of ``kind`` anchored at ``pos`` (None when the bases do not allow it)."""
    if kind is EditType.SNV:
        ref = window[pos]
        return RelEdit(pos, kind, ref, rng.choice(OTHER_BASES[ref])) if ref in OTHER_BASES else None
    if kind is EditType.INS:
        anchor = window[pos]
        if anchor not in OTHER_BASES:
            return None
        return RelEdit(pos, kind, anchor, anchor + random_bases(rng, min(draw_length(rng, _GEOMETRIC), V1_MAX_LEN - 1)))
    if kind is EditType.DEL:
        span = window[pos : pos + 1 + min(draw_length(rng, _GEOMETRIC), V1_MAX_LEN - 1)]
        return RelEdit(pos, kind, span, span[0]) if _acgt(span) else None
    if kind is EditType.MNV:
        span = window[pos : pos + draw_length(rng, _MNV_LENGTHS)]
        if not _acgt(span):
            return None
        return RelEdit(pos, kind, span, "".join([rng.choice(OTHER_BASES[b]) for b in span]))
    n_ref = rng.choice(_INDEL_LENGTHS)
    n_alt = rng.choice([n for n in _INDEL_LENGTHS if n != n_ref])
    span = window[pos : pos + n_ref]
    return RelEdit(pos, EditType.INDEL, span, span[0] + random_bases(rng, n_alt - 1)) if _acgt(span) else None


def follow_up_edit(
    window: str,
    taken: Sequence[RelEdit],
    kind: EditType,
    rng: random.Random,
    *,
    allowed: Callable[[RelEdit], bool] = lambda e: True,
    radius: int = NEIGHBOURHOOD_BP,
    margin: int = EDGE_MARGIN,
    attempts: int = ATTEMPTS,
) -> RelEdit | None:
    """A synthetic edit of ``kind`` near ``taken[0]`` that overlaps none of ``taken``."""
    locus = taken[0].rel_pos
    lo = max(margin, locus - radius)
    hi = min(len(window) - margin - 1, locus + radius)
    if lo > hi:
        return None
    for _ in range(attempts):
        pos = rng.randint(lo, hi)
        edit = _propose(window, pos, kind, rng)
        if edit is None or edit.end > len(window) - margin:
            continue
        if any(edit.rel_pos < t.end and t.rel_pos < edit.end for t in taken):
            continue
        if allowed(edit):
            return edit
    return None


def step_targets(window: str, edits: Sequence[RelEdit]) -> tuple[str, ...]:
    """Target k = window after edits 1..k, length-restored around the first edit's locus."""
    locus = edits[0].rel_pos
    size = len(window)
    out = []
    for k in range(1, len(edits) + 1):
        edited = window
        for edit in sorted(edits[:k], key=lambda e: e.rel_pos, reverse=True):
            edited = apply_edit(edited, edit)
        out.append(restore_length(edited, size, locus=locus))
    return tuple(out)


__all__ = ["ATTEMPTS", "EDGE_MARGIN", "NEIGHBOURHOOD_BP", "follow_up_edit", "step_targets"]
