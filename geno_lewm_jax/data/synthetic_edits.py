"""Synthetic edit samplers: uniform SNVs, geometric-length indels, MNVs.

They give every window a full set of actions when real variants are sparse.
Each takes a ``random.Random`` and makes exactly the draws geno-lewm 0.2.1
makes, in the same order, so legacy-mode tuples match the reference.
Positions keep ``edge_margin`` bp away from both window ends.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from geno_lewm_jax.data.actions import V1_MAX_LEN, EditType, RelEdit
from geno_lewm_jax.errors import InputError

DEFAULT_EDGE_MARGIN = 64
BASES = ("A", "C", "G", "T")
OTHER_BASES: dict[str, tuple[str, str, str]] = {b: tuple(x for x in BASES if x != b) for b in BASES}  # type: ignore[misc]
_SNV_RETRIES = 10

LengthDist = Mapping[int, float] | Sequence[float] | None


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    """Running sum of normalised weights, accumulated in order (keeps float ties identical)."""
    total = sum(weights)
    out, running = [], 0.0
    for w in weights:
        running += w / total
        out.append(running)
    return tuple(out)


_GEOMETRIC_LENGTHS = tuple(range(1, V1_MAX_LEN + 1))
_GEOMETRIC_CDF = _cumulative([0.5**k for k in _GEOMETRIC_LENGTHS])


def length_table(length_dist: LengthDist) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(lengths, cumulative probabilities) of a length distribution, validated.

    ``None`` is the truncated geometric (p = 0.5) on 1..16; a mapping is
    {length: weight}; a sequence is weights for lengths 1, 2, ...
    """
    if length_dist is None:
        return _GEOMETRIC_LENGTHS, _GEOMETRIC_CDF
    if isinstance(length_dist, Mapping):
        lengths = tuple(sorted(length_dist))
        weights = [length_dist[k] for k in lengths]
    else:
        weights = list(length_dist)
        lengths = tuple(range(1, len(weights) + 1))
    if not lengths:
        raise InputError("length_dist is empty", details={"field": "length_dist"})
    if any(w < 0 for w in weights):
        raise InputError(f"length_dist weights must be >= 0, got {weights}", details={"weights": weights})
    if any(k < 1 or k > V1_MAX_LEN for k in lengths):
        raise InputError(
            f"length_dist lengths must lie in [1, {V1_MAX_LEN}], got {list(lengths)}",
            details={"lengths": list(lengths), "v1_max_len": V1_MAX_LEN},
        )
    if sum(weights) <= 0:
        raise InputError("length_dist weights sum to zero", details={"weights": weights})
    return lengths, _cumulative(weights)


def draw_length(rng: random.Random, table: tuple[tuple[int, ...], tuple[float, ...]]) -> int:
    """First length whose cumulative probability reaches one uniform draw."""
    u = rng.random()
    lengths, cdf = table
    for k, c in zip(lengths, cdf):
        if u <= c:
            return k
    return lengths[-1]


def random_bases(rng: random.Random, n: int) -> str:
    return "".join([rng.choice(BASES) for _ in range(n)])


def draw_position(rng: random.Random, window_len: int, edge_margin: int) -> int:
    """Uniform position in [edge_margin, window_len - edge_margin - 1]."""
    return rng.randint(edge_margin, window_len - edge_margin - 1)


def _check_args(window: str, n: int, edge_margin: int) -> None:
    if edge_margin < 0:
        raise InputError(f"edge_margin must be >= 0, got {edge_margin}", details={"edge_margin": edge_margin})
    if 2 * edge_margin >= len(window):
        raise InputError(
            f"a {len(window)} bp window has no interior with edge_margin={edge_margin}",
            details={"window_len": len(window), "edge_margin": edge_margin},
            remediation="use a longer window or a smaller edge_margin",
        )
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}", details={"n": n})


def uniform_snv(window: str, n: int, *, rng: random.Random, edge_margin: int = DEFAULT_EDGE_MARGIN) -> list[RelEdit]:
    """``n`` SNVs at uniform interior positions, ALT uniform over the 3 other bases.

    A non-ACGT position is redrawn up to 10 times; positions may repeat.
    """
    _check_args(window, n, edge_margin)
    size = len(window)
    out: list[RelEdit] = []
    for _ in range(n):
        pos = draw_position(rng, size, edge_margin)
        ref = window[pos]
        retries = 0
        while ref not in OTHER_BASES:
            if retries == _SNV_RETRIES:
                raise InputError(
                    f"no A/C/G/T base found in {_SNV_RETRIES + 1} draws inside a {size} bp window",
                    details={"window_len": size, "edge_margin": edge_margin},
                    remediation="the window is mostly N; drop it from the snapshot",
                )
            retries += 1
            pos = draw_position(rng, size, edge_margin)
            ref = window[pos]
        out.append(RelEdit(pos, EditType.SNV, ref, rng.choice(OTHER_BASES[ref])))
    return out


def indel(
    window: str,
    n: int,
    *,
    rng: random.Random,
    length_dist: LengthDist = None,
    type_mix: tuple[float, float] = (0.5, 0.5),
    edge_margin: int = DEFAULT_EDGE_MARGIN,
) -> list[RelEdit]:
    """``n`` anchored insertions/deletions; event length capped at 15 bp.

    A deletion that would cross the right margin becomes an insertion; an
    N anchor or an N inside a deletion costs an attempt. At most 16n+16
    attempts are made before giving up with :class:`InputError`.
    """
    _check_args(window, n, edge_margin)
    if any(p < 0 for p in type_mix) or sum(type_mix) <= 0:
        raise InputError(
            f"type_mix must be non-negative with a positive sum, got {list(type_mix)}",
            details={"type_mix": list(type_mix)},
        )
    table = length_table(length_dist)
    p_ins = type_mix[0] / sum(type_mix)
    size = len(window)
    limit = size - edge_margin
    out: list[RelEdit] = []
    attempts = 0
    while len(out) < n and attempts < 16 * n + 16:
        attempts += 1
        pos = draw_position(rng, size, edge_margin)
        anchor = window[pos]
        if anchor not in OTHER_BASES:
            continue
        event = min(draw_length(rng, table), V1_MAX_LEN - 1)
        if rng.random() >= p_ins and pos + 1 + event <= limit:
            span = window[pos : pos + 1 + event]
            if not set(span) <= OTHER_BASES.keys():
                continue
            out.append(RelEdit(pos, EditType.DEL, span, anchor))
        else:
            out.append(RelEdit(pos, EditType.INS, anchor, anchor + random_bases(rng, event)))
    if len(out) < n:
        raise InputError(
            f"only {len(out)} of {n} indels could be placed in a {size} bp window (too many N)",
            details={"requested": n, "produced": len(out), "window_len": size, "edge_margin": edge_margin},
            remediation="the window is mostly N; drop it from the snapshot",
        )
    return out


_MNV_DEFAULT = {k: 1.0 for k in range(2, 9)}


def mnv(
    window: str,
    n: int,
    *,
    rng: random.Random,
    length_dist: LengthDist = None,
    edge_margin: int = DEFAULT_EDGE_MARGIN,
) -> list[RelEdit]:
    """Up to ``n`` multi-base substitutions (every base changes); skipped draws are not retried."""
    _check_args(window, n, edge_margin)
    table = length_table(_MNV_DEFAULT if length_dist is None else length_dist)
    size = len(window)
    out: list[RelEdit] = []
    for _ in range(n):
        pos = draw_position(rng, size, edge_margin)
        length = max(2, min(draw_length(rng, table), V1_MAX_LEN))
        if pos + length > size - edge_margin:
            continue
        ref = window[pos : pos + length]
        if not set(ref) <= OTHER_BASES.keys():
            continue
        alt = "".join([rng.choice(OTHER_BASES[b]) for b in ref])
        out.append(RelEdit(pos, EditType.MNV, ref, alt))
    return out


__all__ = [
    "BASES",
    "DEFAULT_EDGE_MARGIN",
    "OTHER_BASES",
    "draw_length",
    "draw_position",
    "indel",
    "length_table",
    "mnv",
    "random_bases",
    "uniform_snv",
]
