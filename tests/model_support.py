"""Shared helpers for the model tests: reference modules with random weights, random edits."""

from __future__ import annotations

import numpy as np
import torch
from flax import nnx
from geno_lewm.action import ActionEncoder as RefActionEncoder
from geno_lewm.action import EditType, RelEdit
from geno_lewm.predictor import Predictor as RefPredictor

from geno_lewm_jax.interop import from_reference_state_dict
from geno_lewm_jax.model import ActionEncoder, Predictor

# A small but complete predictor (Linear state projection, both cross-block kinds, a self block),
# small enough to compile fast for the B x K grids.
SMALL = dict(d_state=64, d_action=16, d_hidden=48, n_heads=4, n_cross_layers=2, n_self_layers=1, ffn_dim=40, max_actions=16)
RELEASE = dict(d_state=1024, d_action=64, d_hidden=768, n_heads=8, n_cross_layers=6, n_self_layers=2, ffn_dim=768, max_actions=16)


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Overwrite every parameter (zero-init ones included) with seeded normals; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim >= 2:
                param.copy_(noise / param.shape[1] ** 0.5)
            elif name.endswith("weight"):  # the only 1-D weights are LayerNorm scales
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)
    return module.eval()


def predictor_pair(seed: int = 0, **overrides: object) -> tuple[RefPredictor, Predictor]:
    """A randomised reference Predictor and our Predictor loaded from its state_dict."""
    kwargs = {**SMALL, **overrides}
    causal = bool(kwargs.pop("causal", False))
    ref = randomize_(RefPredictor(**kwargs), seed)
    # Abstract build (no random init to compile), then every param comes from the reference.
    ours = nnx.eval_shape(lambda: Predictor(**kwargs, causal=causal, rngs=nnx.Rngs(seed)))
    from_reference_state_dict(ours, ref.state_dict())
    return ref, ours


def action_encoder_pair(seed: int = 0, d_action: int = 64) -> tuple[RefActionEncoder, ActionEncoder]:
    ref = randomize_(RefActionEncoder(d_action=d_action), seed)
    ours = nnx.eval_shape(lambda: ActionEncoder(d_action=d_action, rngs=nnx.Rngs(seed)))
    from_reference_state_dict(ours, ref.state_dict())
    return ref, ours


def left_aligned_mask(rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    """Ragged left-aligned mask with at least one full row and one valid step per row."""
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    return np.arange(steps)[None, :] < lengths[:, None]


def inputs(rng: np.random.Generator, batch: int, steps: int, d_state: int, d_action: int) -> tuple[np.ndarray, ...]:
    state = rng.standard_normal((batch, d_state)).astype(np.float32)
    actions = rng.standard_normal((batch, steps, d_action)).astype(np.float32)
    return state, actions, left_aligned_mask(rng, batch, steps)


def _bases(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def random_edit(rng: np.random.Generator, kind: EditType, max_window_bp: int = 12_288) -> RelEdit:
    """A valid RelEdit of the given type with lengths up to 16 bp."""
    if kind == EditType.SNV:
        ref_len, alt_len = 1, 1
    elif kind == EditType.INS:
        ref_len, alt_len = 1, int(rng.integers(2, 17))
    elif kind == EditType.DEL:
        ref_len, alt_len = int(rng.integers(2, 17)), 1
    elif kind == EditType.MNV:
        ref_len = alt_len = int(rng.integers(2, 17))
    else:
        ref_len, alt_len = rng.choice(np.arange(2, 17), size=2, replace=False).tolist()
    ref = _bases(rng, ref_len)
    alt = _bases(rng, alt_len)
    while alt == ref:
        alt = _bases(rng, alt_len)
    return RelEdit(int(rng.integers(0, max_window_bp)), kind, ref, alt)


KINDS = (EditType.SNV, EditType.INS, EditType.DEL, EditType.MNV, EditType.INDEL)


def random_rows(rng: np.random.Generator, batch: int, steps: int) -> list[list[RelEdit]]:
    """Ragged rows (row 0 full length) cycling through every edit type, 16 bp extremes included."""
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    rows, n = [], 0
    for length in lengths:
        row = []
        for _ in range(int(length)):
            row.append(random_edit(rng, KINDS[n % len(KINDS)]))
            n += 1
        rows.append(row)
    rows[0][0] = RelEdit(max(0, 12_287), EditType.MNV, "ACGTACGTACGTACGT", "TGCATGCATGCATGCA")
    return rows


def torch_in(*arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
