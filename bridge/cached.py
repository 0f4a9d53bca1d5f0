"""Encoding through the feature cache: look up every key, encode only the misses, store them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bridge.cache import CacheKey, FeatureCache
from bridge.contracts import CONTRACT_LEGACY
from bridge.encoder import CarbonEncoder
from bridge.tokenizer import check_batch, window_sha256


def cache_keys(encoder: CarbonEncoder, sequences: Sequence[str], loci: Sequence[int | None]) -> list[CacheKey]:
    """The cache keys of (window, locus) pairs under this encoder's identity and contract."""
    return [
        CacheKey(window_sha256(seq), encoder.identity, None if locus is None else int(locus), encoder.contract)
        for seq, locus in zip(check_batch(sequences), loci)
    ]


def encode_groups(encoder: CarbonEncoder, sequences: list[str], misses: list[int]) -> list[list[int]]:
    """Batches of misses to encode.

    Under legacy_raw_v1 a global mean reads batch padding, so a cached value
    would depend on its batch-mates; misses are grouped by equal length, which
    makes each value the one geno-lewm 0.2.1 computes for the window alone.
    """
    if encoder.contract != CONTRACT_LEGACY:
        return [misses[i : i + encoder.max_batch] for i in range(0, len(misses), encoder.max_batch)]
    by_len: dict[int, list[int]] = {}
    for i in misses:
        by_len.setdefault(-(-len(sequences[i]) // 6), []).append(i)
    return [g[j : j + encoder.max_batch] for g in by_len.values() for j in range(0, len(g), encoder.max_batch)]


@dataclasses.dataclass
class CacheCounts:
    """Lookups and hits so far (a training job reports the hit rate from them)."""

    lookups: int = 0
    hits: int = 0

    def snapshot(self) -> tuple[int, int]:
        return self.hits, self.lookups


def encode_with_cache(
    encoder: CarbonEncoder,
    cache: FeatureCache,
    sequences: Sequence[str],
    loci: Sequence[int | None],
    *,
    counts: CacheCounts | None = None,
) -> np.ndarray:
    """float32 [B, d_state]: cached rows read back, missing rows encoded and appended."""
    seqs = check_batch(sequences)
    keys = cache_keys(encoder, seqs, loci)
    found = cache.get_many(keys)
    if counts is not None:
        counts.lookups += len(found)
        counts.hits += sum(vec is not None for vec in found)
    out = np.empty((len(seqs), encoder.d_state), dtype=np.float32)
    misses = []
    for i, vec in enumerate(found):
        if vec is None:
            misses.append(i)
        else:
            out[i] = vec
    for group in encode_groups(encoder, seqs, misses):
        out[group] = encoder.encode_batch([seqs[i] for i in group], [loci[i] for i in group])
        cache.put_many([keys[i] for i in group], out[group])
    return out
