"""Weight exchange with geno-lewm 0.2.1's torch modules, as plain numpy.

``to_reference_state_dict(module)`` gives exactly the reference state_dict
(names, order, shapes; torch (out, in) Linear weights, q/k/v packed into
``in_proj_weight`` rows q, k, v) so ``load_state_dict(strict=True)`` accepts
it; ``from_reference_state_dict(module, state_dict)`` writes such a mapping
into a Predictor or ActionEncoder in place. The predictor's same-typed blocks
hold their parameters stacked on a layer axis; each reference block
(``cross_blocks.i``, ``self_blocks.j``) is one row of those stacks. Values
may be numpy arrays or anything ``np.asarray`` takes (torch CPU tensors
included; torch itself is never imported here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from geno_lewm_jax.errors import InputError
from geno_lewm_jax.model.action_encoder import ActionEncoder, EncoderLayer
from geno_lewm_jax.model.attention import Attention
from geno_lewm_jax.model.blocks import ActionToStateBlock, FeedForward, SelfAttentionBlock, StateToActionBlock
from geno_lewm_jax.model.layer_stack import layer_count
from geno_lewm_jax.model.predictor import Predictor


@dataclasses.dataclass(frozen=True)
class _Part:
    """One layer's share of a param: all of it (``layer`` None) or row ``layer`` of a stacked one."""

    param: nnx.Param
    layer: int | None = None

    def shape(self) -> tuple[int, ...]:
        shape = tuple(self.param.get_value().shape)
        return shape if self.layer is None else shape[1:]

    def read(self) -> np.ndarray:
        value = np.asarray(self.param.get_value())
        return value if self.layer is None else value[self.layer]


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One reference tensor: the concatenation (axis 0) of parts, each transposed if a kernel."""

    parts: tuple[_Part, ...]
    transpose: bool

    def shape(self) -> tuple[int, ...]:
        shapes = [part.shape()[::-1] if self.transpose else part.shape() for part in self.parts]
        return (sum(s[0] for s in shapes),) + shapes[0][1:]

    def read(self) -> np.ndarray:
        parts = [part.read() for part in self.parts]
        if self.transpose:
            parts = [part.T for part in parts]
        return np.array(np.concatenate(parts, axis=0), dtype=np.float32, order="C")

    def write_into(self, value: np.ndarray, buffers: dict[int, np.ndarray]) -> None:
        """Copy ``value``'s pieces into the host buffers of the params (by id), layer rows included."""
        for part, piece in zip(self.parts, np.split(value, len(self.parts), axis=0)):
            buffer = buffers.setdefault(id(part.param), np.empty(part.param.get_value().shape, np.float32))
            buffer[() if part.layer is None else part.layer] = piece.T if self.transpose else piece


def _linear(prefix: str, layer: nnx.Linear, at: int | None = None) -> list[tuple[str, _Slot]]:
    return [
        (f"{prefix}.weight", _Slot((_Part(layer.kernel, at),), True)),
        (f"{prefix}.bias", _Slot((_Part(layer.bias, at),), False)),
    ]


def _norm(prefix: str, norm: nnx.LayerNorm, at: int | None = None) -> list[tuple[str, _Slot]]:
    return [
        (f"{prefix}.weight", _Slot((_Part(norm.scale, at),), False)),
        (f"{prefix}.bias", _Slot((_Part(norm.bias, at),), False)),
    ]


def _attention(prefix: str, attn: Attention, at: int | None = None) -> list[tuple[str, _Slot]]:
    q, k, v = attn.query, attn.key, attn.value
    return [
        (f"{prefix}.in_proj_weight", _Slot(tuple(_Part(x.kernel, at) for x in (q, k, v)), True)),
        (f"{prefix}.in_proj_bias", _Slot(tuple(_Part(x.bias, at) for x in (q, k, v)), False)),
        *_linear(f"{prefix}.out_proj", attn.out, at),
    ]


def _ffn(prefix: str, ffn: FeedForward, at: int | None = None) -> list[tuple[str, _Slot]]:
    return [*_linear(f"{prefix}.net.0", ffn.up, at), *_linear(f"{prefix}.net.2", ffn.down, at)]


def _state_to_action(prefix: str, block: StateToActionBlock, at: int | None = None) -> list[tuple[str, _Slot]]:
    out = _norm(f"{prefix}.attn_norm", block.attn_norm, at) + _attention(f"{prefix}.attn", block.attn, at)
    return out + _norm(f"{prefix}.ffn_norm", block.ffn_norm, at) + _ffn(f"{prefix}.ffn", block.ffn, at)


def _action_to_state(prefix: str, block: ActionToStateBlock, at: int) -> list[tuple[str, _Slot]]:
    out = _norm(f"{prefix}.query_norm", block.query_norm, at) + _norm(f"{prefix}.memory_norm", block.memory_norm, at)
    out += _attention(f"{prefix}.attn", block.attn, at) + _norm(f"{prefix}.ffn_norm", block.ffn_norm, at)
    return out + _ffn(f"{prefix}.ffn", block.ffn, at)


def _self_block(prefix: str, block: SelfAttentionBlock, at: int | None = None) -> list[tuple[str, _Slot]]:
    out = _norm(f"{prefix}.attn_norm", block.attn_norm, at) + _attention(f"{prefix}.attn", block.attn, at)
    return out + _norm(f"{prefix}.ffn_norm", block.ffn_norm, at) + _ffn(f"{prefix}.ffn", block.ffn, at)


def _predictor_layout(p: Predictor) -> list[tuple[str, _Slot]]:
    """Reference names in state_dict order; the stacked layers map to ``cross_blocks.i`` / ``self_blocks.j``.

    Cross pair ``i`` holds reference blocks 2i (state->action) and 2i+1
    (action->state); ``cross_last`` is block n_layers-1 when n_layers is odd.
    ``self_blocks`` holds self blocks 0..n-2 and ``last_self_block`` block n-1.
    """
    out: list[tuple[str, _Slot]] = []
    if p.state_projection is not None:
        out += _linear("state_projection", p.state_projection)
    out += _linear("action_projection", p.action_projection)
    out += [
        ("token_type_embedding.weight", _Slot((_Part(p.token_type_embedding.embedding, None),), False)),
        ("step_position_embedding.weight", _Slot((_Part(p.step_position_embedding.embedding, None),), False)),
    ]
    pairs = layer_count(p.cross_pairs)
    for i in range(pairs):
        out += _state_to_action(f"cross_blocks.{2 * i}", p.cross_pairs.state_to_action, i)
        out += _action_to_state(f"cross_blocks.{2 * i + 1}", p.cross_pairs.action_to_state, i)
    if p.cross_last is not None:
        out += _state_to_action(f"cross_blocks.{2 * pairs}", p.cross_last)
    scanned = layer_count(p.self_blocks)
    for j in range(scanned):
        out += _self_block(f"self_blocks.{j}", p.self_blocks, j)
    if p.last_self_block is not None:
        out += _self_block(f"self_blocks.{scanned}", p.last_self_block)
    out += _linear("output_mlp.0", p.readout_hidden) + _norm("output_mlp.2", p.readout_norm)
    out += _linear("output_mlp.3", p.readout_out)
    return out


def _encoder_layer(prefix: str, layer: EncoderLayer) -> list[tuple[str, _Slot]]:
    return [
        *_attention(f"{prefix}.self_attn", layer.self_attn),
        *_linear(f"{prefix}.linear1", layer.linear1),
        *_linear(f"{prefix}.linear2", layer.linear2),
        *_norm(f"{prefix}.norm1", layer.norm1),
        *_norm(f"{prefix}.norm2", layer.norm2),
    ]


def _action_encoder_layout(a: ActionEncoder) -> list[tuple[str, _Slot]]:
    seq = a.seq_encoder
    out = [
        ("padding_embedding", _Slot((_Part(a.padding_embedding, None),), False)),
        ("type_embedding.weight", _Slot((_Part(a.type_embedding.embedding, None),), False)),
        ("seq_encoder.token_embedding.weight", _Slot((_Part(seq.token_embedding.embedding, None),), False)),
        *_linear("seq_encoder.token_projection", seq.token_projection),
    ]
    for i, layer in enumerate(seq.layers):
        out += _encoder_layer(f"seq_encoder.encoder.layers.{i}", layer)
    out += _linear("projection.0", a.projection_in) + _norm("projection.2", a.projection_norm)
    out += _linear("projection.3", a.projection_out)
    return out


def _layout(module: Any) -> list[tuple[str, _Slot]]:
    if isinstance(module, Predictor):
        return _predictor_layout(module)
    if isinstance(module, ActionEncoder):
        return _action_encoder_layout(module)
    raise InputError(
        f"no reference layout for {type(module).__name__}; expected a Predictor or an ActionEncoder",
        details={"field": "module", "type": type(module).__name__},
    )


def to_reference_state_dict(module: Predictor | ActionEncoder) -> dict[str, np.ndarray]:
    """The module's weights under the reference's state_dict names (float32, C-contiguous numpy)."""
    return {key: slot.read() for key, slot in _layout(module)}


def from_reference_state_dict(module: Predictor | ActionEncoder, state_dict: Mapping[str, Any]) -> None:
    """Load reference-named weights into ``module`` in place; strict on keys, shapes and dtypes.

    Everything is checked before anything is written, so a failure leaves the module unchanged.
    """
    if not isinstance(state_dict, Mapping):
        raise InputError(
            f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}",
            details={"field": "state_dict"},
        )
    layout = dict(_layout(module))
    missing = [k for k in layout if k not in state_dict]
    unexpected = [k for k in state_dict if k not in layout]
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise InputError(
            f"state_dict does not match {type(module).__name__}: "
            + (f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}")
            + (f" ({len(missing)} missing, {len(unexpected)} unexpected in all)" if len(missing) + len(unexpected) > 1 else ""),
            details={"field": first, "missing": missing, "unexpected": unexpected},
            remediation="Build the module with the same config as the checkpoint "
            "(d_state == d_hidden drops state_projection; n_layers / n_self_layers set the block count).",
        )
    staged: list[tuple[_Slot, np.ndarray]] = []
    for key, slot in layout.items():
        raw = state_dict[key]
        try:
            value = np.asarray(raw)
        except Exception as exc:  # noqa: BLE001 - e.g. a bf16 or CUDA torch tensor
            raise InputError(
                f"state_dict[{key!r}] cannot be read as a numpy array ({exc.__class__.__name__}: {exc})",
                details={"field": key, "type": type(raw).__name__},
                remediation="Pass CPU float32 arrays (for torch: tensor.detach().float().cpu()).",
            ) from None
        if not np.issubdtype(value.dtype, np.floating):
            raise InputError(
                f"state_dict[{key!r}] has dtype {value.dtype}; expected a floating-point array",
                details={"field": key, "dtype": str(value.dtype)},
            )
        if tuple(value.shape) != slot.shape():
            raise InputError(
                f"state_dict[{key!r}] has shape {tuple(value.shape)}, expected {slot.shape()}",
                details={"field": key, "expected": slot.shape(), "actual": tuple(value.shape)},
            )
        # A copy: JAX on CPU may alias host memory, and the caller's (torch) tensor may change later.
        staged.append((slot, np.array(value, dtype=np.float32, copy=True)))
    buffers: dict[int, np.ndarray] = {}
    for slot, value in staged:
        slot.write_into(value, buffers)
    for slot, _ in staged:  # every part of every param was written: the layout covers each one once
        for part in slot.parts:
            if id(part.param) in buffers:
                part.param.set_value(jnp.asarray(buffers.pop(id(part.param))))


__all__ = ["from_reference_state_dict", "to_reference_state_dict"]
