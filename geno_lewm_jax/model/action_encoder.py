"""The edit (action) encoder: EditFeatures [B, K] -> action embeddings [B, K, A].

Per edit: a [sin | cos] code of rel_pos with frequencies
max_window_bp^(-i / (d_pos/2 - 1)), an edit-type embedding, and ref/alt bases
each encoded by a shared 6-mer micro-transformer (post-LN, no attention mask,
mean over all four slots, empty ones included), concatenated and projected to
d_action. Padded steps get the learned ``padding_embedding``. Sizes and init
follow the reference, which keeps torch's default initialisers; as with
``torch.nn.TransformerEncoder``, both micro-transformer layers start as copies
of one initialised layer.

The 6-mer table's row PAD_ID (4096) is zero and must stay zero: multiply
gradients by :func:`padding_row_mask` before clipping and the optimizer
update (torch's ``padding_idx`` gives that row no gradient).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.model.attention import Attention
from geno_lewm_jax.model.blocks import gelu, layer_norm
from geno_lewm_jax.model.featurize import DEFAULT_MAX_WINDOW_BP, NUM_EDIT_TYPES, PAD_ID, SLOTS, EditFeatures
from geno_lewm_jax.model.initializers import normal, standard_normal, torch_linear, torch_packed_qkv
from geno_lewm_jax.model.params import initialized
from geno_lewm_jax.model.validation import is_traced

D_POS = 128
D_TYPE = 64
D_SEQ = 256
TOKEN_DIM = 128
SEQ_HEADS = 4
SEQ_LAYERS = 2
PROJECTION_HIDDEN = 1024
PADDING_ROW_PATH = ("seq_encoder", "token_embedding", "embedding")
"""Path (in nnx.state / to_pure_dict trees) of the 6-mer table whose row PAD_ID stays zero."""


def torch_dense(fan_in: int, fan_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    """A Linear with torch's default init, float32."""
    init = torch_linear(fan_in)
    return nnx.Linear(fan_in, fan_out, param_dtype=jnp.float32, kernel_init=init, bias_init=init, rngs=rngs)


@functools.lru_cache(maxsize=8)
def sinusoid_frequencies(d_pos: int, max_window_bp: int) -> np.ndarray:
    """float32 [d_pos/2]: max_window_bp^(-i/(half-1)), rounded as torch's float32 computation."""
    half = d_pos // 2
    step = np.float32(-math.log(float(max_window_bp)) / max(half - 1, 1))
    exponent = np.arange(half, dtype=np.float32) * step  # float32 product, as torch
    table = np.exp(exponent.astype(np.float64)).astype(np.float32)
    table.setflags(write=False)
    return table


class EncoderLayer(nnx.Module):
    """Post-LN transformer layer (torch TransformerEncoderLayer, gelu, ffn width = d_model)."""

    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.self_attn = Attention(
            d_model, n_heads, qkv_init=torch_packed_qkv(d_model), out_init=torch_linear(d_model), rngs=rngs
        )
        self.linear1 = torch_dense(d_model, d_model, rngs)
        self.linear2 = torch_dense(d_model, d_model, rngs)
        self.norm1 = layer_norm(d_model, rngs)
        self.norm2 = layer_norm(d_model, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm1(x + self.self_attn(x, x))
        return self.norm2(x + self.linear2(gelu(self.linear1(x))))


def _copy_of(layer: nnx.Module) -> nnx.Module:
    """A clone with its own buffers: the same starting values (torch clones the layer), no shared
    arrays, so a donated training step never sees one buffer twice."""
    twin = nnx.clone(layer)
    nnx.update(twin, jax.device_put(nnx.state(layer), may_alias=False))
    return twin


class SeqMicroEncoder(nnx.Module):
    """Four 6-mer ids -> one D_SEQ vector (shared by ref and alt bases)."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        table_init = normal(1.0, zero_row=PAD_ID)
        self.token_embedding = nnx.Embed(PAD_ID + 1, TOKEN_DIM, param_dtype=jnp.float32, embedding_init=table_init, rngs=rngs)
        self.token_projection = torch_dense(TOKEN_DIM, D_SEQ, rngs)
        first = EncoderLayer(D_SEQ, SEQ_HEADS, rngs=rngs)
        self.layers = nnx.List([first] + [_copy_of(first) for _ in range(SEQ_LAYERS - 1)])

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids int [N, 4] -> [N, D_SEQ]."""
        x = self.token_projection(self.token_embedding.embedding[ids])
        for layer in self.layers:
            x = layer(x)
        return x.mean(axis=1)


class ActionEncoder(nnx.Module):
    """EditFeatures -> float32 [B, K, d_action]; padded steps hold ``padding_embedding``."""

    def __init__(self, *, d_action: int = 64, max_window_bp: int = DEFAULT_MAX_WINDOW_BP, rngs: nnx.Rngs) -> None:
        for name, value in (("d_action", d_action), ("max_window_bp", max_window_bp)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}", details={"field": name})
        self.d_action = d_action
        self.max_window_bp = max_window_bp
        self.type_embedding = nnx.Embed(NUM_EDIT_TYPES, D_TYPE, param_dtype=jnp.float32, embedding_init=standard_normal, rngs=rngs)
        self.seq_encoder = SeqMicroEncoder(rngs=rngs)
        width = D_POS + D_TYPE + 2 * D_SEQ
        self.projection_in = torch_dense(width, PROJECTION_HIDDEN, rngs)
        self.projection_norm = layer_norm(PROJECTION_HIDDEN, rngs)
        self.projection_out = torch_dense(PROJECTION_HIDDEN, d_action, rngs)
        self.padding_embedding = nnx.Param(jax.device_put(np.zeros((d_action,), np.float32)))

    def __call__(self, features: EditFeatures) -> jax.Array:
        _check_features(features, self.max_window_bp)
        rel_pos = jnp.asarray(features.rel_pos)
        batch, steps = rel_pos.shape
        angles = rel_pos.astype(jnp.float32)[..., None] * sinusoid_frequencies(D_POS, self.max_window_bp)
        position = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
        edit_type = self.type_embedding.embedding[jnp.asarray(features.edit_type)]
        ids = jnp.concatenate([jnp.asarray(features.ref_ids), jnp.asarray(features.alt_ids)], axis=-1)
        bases = self.seq_encoder(ids.reshape(batch * steps * 2, SLOTS)).reshape(batch, steps, 2 * D_SEQ)
        hidden = gelu(self.projection_in(jnp.concatenate([position, edit_type, bases], axis=-1)))
        encoded = self.projection_out(self.projection_norm(hidden))
        return jnp.where(jnp.asarray(features.mask)[..., None], encoded, self.padding_embedding[...])


def _check_features(features: Any, max_window_bp: int) -> None:
    """Shapes and dtypes at trace time; value ranges only on concrete arrays."""
    if not isinstance(features, EditFeatures):
        raise InputError(
            f"the action encoder takes EditFeatures, got {type(features).__name__}",
            details={"field": "features"},
            remediation="Build them with geno_lewm_jax.model.featurize_edits(rows).",
        )
    shape = tuple(np.shape(features.mask))
    expected = {"rel_pos": shape, "edit_type": shape, "ref_ids": shape + (SLOTS,), "alt_ids": shape + (SLOTS,), "mask": shape}
    if len(shape) != 2:
        raise InputError(f"features.mask must be [B, K], got {shape}", details={"field": "features.mask", "shape": shape})
    for name, want in expected.items():
        value = getattr(features, name)
        got = tuple(np.shape(value))
        if got != want:
            raise InputError(
                f"features.{name} has shape {got}, expected {want}", details={"field": f"features.{name}", "shape": got}
            )
        kind = jnp.bool_ if name == "mask" else jnp.integer
        if not jnp.issubdtype(jnp.result_type(value), kind):
            raise InputError(
                f"features.{name} must be {'bool' if name == 'mask' else 'integer'}, got {jnp.result_type(value)}",
                details={"field": f"features.{name}", "dtype": str(jnp.result_type(value))},
            )
    if any(is_traced(getattr(features, name)) for name in expected):
        return
    mask = np.asarray(features.mask)
    rel_pos = np.asarray(features.rel_pos)[mask]
    if rel_pos.size and (rel_pos.min() < 0 or rel_pos.max() >= max_window_bp):
        raise InputError(
            f"features.rel_pos must fall inside [0, max_window_bp={max_window_bp})",
            details={"field": "features.rel_pos", "max_window_bp": max_window_bp},
        )
    for name, top in (("edit_type", NUM_EDIT_TYPES - 1), ("ref_ids", PAD_ID), ("alt_ids", PAD_ID)):
        values = np.asarray(getattr(features, name))
        if values.size and (values.min() < 0 or values.max() > top):
            raise InputError(
                f"features.{name} must lie in [0, {top}]", details={"field": f"features.{name}", "max": top}
            )


def build_action_encoder(config: Any, *, seed: int = 0) -> ActionEncoder:
    """The action encoder a config describes (reads action.{d_action,max_window_bp}); drawn on the host."""
    action = config.action
    return initialized(ActionEncoder, seed=seed, d_action=action.d_action, max_window_bp=action.max_window_bp)


def padding_row_mask(params: Any) -> Any:
    """Multiplicative gradient mask for a params pytree: 0 on the 6-mer padding row, 1 elsewhere.

    ``params`` may be ``nnx.state(model, nnx.Param)``, its ``nnx.to_pure_dict``
    form, or any tree holding one of them (e.g. {"action_encoder": ..., ...}):
    the leaf whose path ends with PADDING_ROW_PATH gets a [4097, 1] mask, every
    other leaf the scalar 1.0. Use ``jax.tree.map(jnp.multiply, grads, mask)``.
    """

    def keys(path: tuple[Any, ...]) -> tuple[Any, ...]:
        # nnx.State paths end in GetAttrKey("value") (the Variable's payload); pure dicts do not.
        return tuple(
            getattr(e, "key", getattr(e, "idx", None))
            for e in path
            if not isinstance(e, jax.tree_util.GetAttrKey)
        )

    def leaf_mask(path: tuple[Any, ...], leaf: Any) -> Any:
        if keys(path)[-len(PADDING_ROW_PATH):] == PADDING_ROW_PATH:
            return jnp.ones((leaf.shape[0], 1), jnp.float32).at[PAD_ID].set(0.0)
        return jnp.float32(1.0)

    return jax.tree_util.tree_map_with_path(leaf_mask, params)
