"""Pooling of Carbon token states into one state per window, on the model's device.

Two contracts. ``l2_normalized_v2`` averages the 6-mer content rows only
(tags and padding excluded), centred on the token that really holds the
edit (``1 + locus // 6``), then L2-normalises. ``legacy_raw_v1`` reproduces
geno-lewm 0.2.1: every row of the padded batch in the global mean, the
centre at ``locus // 6`` and no normalisation.

Each function builds a [B, T] weight matrix and contracts it with the
states, so pooling is one batched matmul with no host round trip.
"""

from __future__ import annotations

import torch

from bridge.tokenizer import K


def _weighted_mean(hidden: torch.Tensor, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    weights = keep.to(dtype)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return torch.einsum("bt,btd->bd", weights, hidden.to(dtype))


def pool_v2(hidden: torch.Tensor, n_content: torch.Tensor, loci: torch.Tensor, radius: int) -> torch.Tensor:
    """float32 [B, d]: unit-norm mean of content rows, whole window or ±radius tokens around the locus.

    ``hidden`` [B, T, d] holds right-padded rows ``<dna>, n_content 6-mers, </dna>, pad...``.
    """
    rows = torch.arange(hidden.shape[1], device=hidden.device)[None, :]
    first = torch.ones_like(n_content)
    last = n_content
    centred = loci >= 0
    centre = 1 + torch.div(loci, K, rounding_mode="floor")
    lo = torch.where(centred, torch.maximum(first, centre - radius), first)
    hi = torch.where(centred, torch.minimum(last, centre + radius), last)
    keep = (rows >= lo[:, None]) & (rows <= hi[:, None])
    pooled = _weighted_mean(hidden, keep, torch.float32)
    return pooled / torch.linalg.vector_norm(pooled, dim=1, keepdim=True)


def pool_legacy(hidden: torch.Tensor, loci: torch.Tensor, radius: int) -> torch.Tensor:
    """float32 [B, d] exactly as geno-lewm 0.2.1 pools: padded rows included, centre one token early, raw.

    The reference sums Python floats; pooling in float64 keeps it within float32 rounding of that.
    """
    width = hidden.shape[1]
    rows = torch.arange(width, device=hidden.device)[None, :]
    centred = loci >= 0
    centre = torch.div(loci, K, rounding_mode="floor")
    lo = torch.where(centred, (centre - radius).clamp(min=0), torch.zeros_like(loci))
    hi = torch.where(centred, (centre + radius).clamp(max=width - 1), torch.full_like(loci, width - 1))
    keep = (rows >= lo[:, None]) & (rows <= hi[:, None])
    return _weighted_mean(hidden, keep, torch.float64).to(torch.float32)
