"""Carbon's DNA tokenisation, done natively with numpy.

Carbon's published tokenizer is remote code that fetches a Qwen BPE model
from the Hub; only its DNA rule matters here and that rule is arithmetic:
``<dna>``, one id per non-overlapping 6-mer (base 4, A=0 T=1 C=2 G=3, the
tail padded with A, any chunk holding N -> ``<oov>``), ``</dna>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from geno_lewm_jax.errors import InputError

K = 6
DNA_OPEN_ID = 151669
DNA_CLOSE_ID = 151670
OOV_ID = 151671
KMER_BASE_ID = 151672
N_KMERS = 4**K
DEFAULT_PAD_ID = 151643  # <|endoftext|>, Carbon's eos and pad
BASES = "ATCG"  # digit order of the 6-mer ids (not ACGT)
RULE_ID = "carbon-dna/k6/ATCG/pad-A/oov-N/151669-151671+151672"

_N_CODE = 4
_BAD_CODE = 255
_LUT = np.full(256, _BAD_CODE, dtype=np.uint8)
for _code, _base in enumerate(BASES + "N"):
    _LUT[ord(_base)] = _code
    _LUT[ord(_base.lower())] = _code
_PLACE = (4 ** np.arange(K - 1, -1, -1)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    """Right-padded ids of a batch; ``n_content`` counts each row's 6-mer tokens."""

    input_ids: np.ndarray  # int64 [B, T]
    attention_mask: np.ndarray  # int64 [B, T]
    n_content: np.ndarray  # int64 [B]


def _codes(sequence: object, index: int) -> np.ndarray:
    """Base codes 0..4 of one window, or an InputError naming the window."""
    field = f"sequences[{index}]"
    if not isinstance(sequence, str):
        raise InputError(f"{field} must be a DNA string, got {type(sequence).__name__}", details={"field": field})
    if not sequence:
        raise InputError(f"{field} is empty; a window needs at least one base", details={"field": field})
    try:
        raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raw = None
    codes = _LUT[raw] if raw is not None else None
    if codes is None or (codes == _BAD_CODE).any():
        bad = sorted({ch for ch in sequence if ch.upper() not in "ACGTN"})
        raise InputError(
            f"{field} holds characters outside A/C/G/T/N: {''.join(bad)[:20]!r}",
            details={"field": field, "bad_chars": bad[:20]},
            remediation="windows must contain only A, C, G, T or N (any case)",
        )
    return codes


def canonical_window(sequence: str, index: int = 0) -> str:
    """The upper-case window after validating its alphabet (what hashes and caches see)."""
    _codes(sequence, index)
    return sequence.upper()


def window_sha256(sequence: str) -> str:
    """Hex sha256 of the canonical (upper-case) window: the cache's content address."""
    return hashlib.sha256(canonical_window(sequence).encode("ascii")).hexdigest()


def kmer_ids(codes: np.ndarray) -> np.ndarray:
    """6-mer token ids of base codes (pure numpy; the tail is padded with A)."""
    n = -(-codes.size // K)
    padded = np.zeros(n * K, dtype=np.uint8)
    padded[: codes.size] = codes
    chunks = padded.reshape(n, K)
    ids = KMER_BASE_ID + (chunks.astype(np.int64) & 3) @ _PLACE
    return np.where((chunks == _N_CODE).any(axis=1), OOV_ID, ids)


def tokenize(sequence: str, index: int = 0) -> np.ndarray:
    """``<dna>`` + 6-mer ids + ``</dna>`` of one window (int64)."""
    body = kmer_ids(_codes(sequence, index))
    return np.concatenate(([DNA_OPEN_ID], body, [DNA_CLOSE_ID])).astype(np.int64)


def check_batch(sequences: object) -> list[str]:
    """The batch as a list, or an InputError for a non-sequence or an empty batch."""
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence):
        raise InputError(
            f"sequences must be a list of DNA strings, got {type(sequences).__name__}",
            details={"field": "sequences"},
        )
    if len(sequences) == 0:
        raise InputError("sequences is an empty batch; pass at least one window", details={"field": "sequences"})
    return list(sequences)


def pad_batch(rows: Sequence[np.ndarray], *, pad_id: int = DEFAULT_PAD_ID, pad_to_multiple: int = 1) -> TokenBatch:
    """Right-pad token rows to one length (rounded up to ``pad_to_multiple``), with a mask."""
    lengths = np.array([r.size for r in rows], dtype=np.int64)
    width = int(lengths.max())
    width = -(-width // pad_to_multiple) * pad_to_multiple
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : row.size] = row
        mask[i, : row.size] = 1
    return TokenBatch(ids, mask, lengths - 2)


def tokenize_batch(sequences: Sequence[str], *, pad_id: int = DEFAULT_PAD_ID, pad_to_multiple: int = 1) -> TokenBatch:
    """Tokenise and right-pad a batch (right padding keeps real tokens' RoPE positions)."""
    seqs = check_batch(sequences)
    return pad_batch([tokenize(s, i) for i, s in enumerate(seqs)], pad_id=pad_id, pad_to_multiple=pad_to_multiple)


def length_buckets(lengths: Sequence[int], max_batch: int, spread: float = 1.25, slack: int = 64) -> list[np.ndarray]:
    """Groups of indices sorted by length, each at most ``max_batch`` long and tight in length.

    A group closes when the next row is more than ``spread`` times (and more
    than ``slack`` tokens) longer than its shortest row, so padding wastes
    little of each forward.
    """
    lens = np.asarray(lengths)
    groups: list[list[int]] = []
    for i in np.argsort(lens, kind="stable").tolist():
        if groups:
            group = groups[-1]
            first = lens[group[0]]
            if len(group) < max_batch and (lens[i] <= spread * first or lens[i] - first <= slack):
                group.append(i)
                continue
        groups.append([i])
    return [np.asarray(g, dtype=np.int64) for g in groups]


def all_kmers() -> list[str]:
    """The 4,096 6-mers in id order."""
    digits = (np.arange(N_KMERS)[:, None] // _PLACE[None, :]) % 4
    letters = np.array(list(BASES))[digits]
    return ["".join(row) for row in letters]
