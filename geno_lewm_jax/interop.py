"""Weight exchange with geno-lewm 0.2.1's torch modules, as plain numpy.

``to_reference_state_dict(module)`` gives exactly the reference state_dict
(names, order, shapes; torch (out, in) Linear weights, q/k/v packed into
``in_proj_weight`` rows q, k, v) so ``load_state_dict(strict=True)`` accepts
it; ``from_reference_state_dict(module, state_dict)`` writes such a mapping
into a Predictor or ActionEncoder in place. Values may be numpy arrays or
anything ``np.asarray`` takes (torch CPU tensors included; torch itself is
never imported here).
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
from geno_lewm_jax.model.blocks import ActionToStateBlock, FeedForward
from geno_lewm_jax.model.predictor import Predictor


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One reference tensor: the concatenation (axis 0) of params, each transposed if a kernel."""

    params: tuple[nnx.Param, ...]
    transpose: bool

    def shape(self) -> tuple[int, ...]:
        shapes = [tuple(p.get_value().shape) for p in self.params]
        shapes = [s[::-1] if self.transpose else s for s in shapes]
        return (sum(s[0] for s in shapes),) + shapes[0][1:]

    def read(self) -> np.ndarray:
        parts = [np.asarray(p.get_value()) for p in self.params]
        if self.transpose:
            parts = [part.T for part in parts]
        return np.array(np.concatenate(parts, axis=0), dtype=np.float32, order="C")

    def write(self, value: np.ndarray) -> None:
        for param, part in zip(self.params, np.split(value, len(self.params), axis=0)):
            param.set_value(jnp.asarray(part.T if self.transpose else part, dtype=jnp.float32))


def _linear(prefix: str, layer: nnx.Linear) -> list[tuple[str, _Slot]]:
    return [(f"{prefix}.weight", _Slot((layer.kernel,), True)), (f"{prefix}.bias", _Slot((layer.bias,), False))]


def _norm(prefix: str, norm: nnx.LayerNorm) -> list[tuple[str, _Slot]]:
    return [(f"{prefix}.weight", _Slot((norm.scale,), False)), (f"{prefix}.bias", _Slot((norm.bias,), False))]


def _attention(prefix: str, attn: Attention) -> list[tuple[str, _Slot]]:
    q, k, v = attn.query, attn.key, attn.value
    return [
        (f"{prefix}.in_proj_weight", _Slot((q.kernel, k.kernel, v.kernel), True)),
        (f"{prefix}.in_proj_bias", _Slot((q.bias, k.bias, v.bias), False)),
        *_linear(f"{prefix}.out_proj", attn.out),
    ]


def _ffn(prefix: str, ffn: FeedForward) -> list[tuple[str, _Slot]]:
    return [*_linear(f"{prefix}.net.0", ffn.up), *_linear(f"{prefix}.net.2", ffn.down)]


def _predictor_layout(p: Predictor) -> list[tuple[str, _Slot]]:
    out: list[tuple[str, _Slot]] = []
    if p.state_projection is not None:
        out += _linear("state_projection", p.state_projection)
    out += _linear("action_projection", p.action_projection)
    out += [
        ("token_type_embedding.weight", _Slot((p.token_type_embedding.embedding,), False)),
        ("step_position_embedding.weight", _Slot((p.step_position_embedding.embedding,), False)),
    ]
    for i, block in enumerate(p.cross_blocks):
        prefix = f"cross_blocks.{i}"
        if isinstance(block, ActionToStateBlock):
            out += _norm(f"{prefix}.query_norm", block.query_norm) + _norm(f"{prefix}.memory_norm", block.memory_norm)
        else:
            out += _norm(f"{prefix}.attn_norm", block.attn_norm)
        out += _attention(f"{prefix}.attn", block.attn) + _norm(f"{prefix}.ffn_norm", block.ffn_norm)
        out += _ffn(f"{prefix}.ffn", block.ffn)
    for j, block in enumerate(p.self_blocks):
        prefix = f"self_blocks.{j}"
        out += _norm(f"{prefix}.attn_norm", block.attn_norm) + _attention(f"{prefix}.attn", block.attn)
        out += _norm(f"{prefix}.ffn_norm", block.ffn_norm) + _ffn(f"{prefix}.ffn", block.ffn)
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
        ("padding_embedding", _Slot((a.padding_embedding,), False)),
        ("type_embedding.weight", _Slot((a.type_embedding.embedding,), False)),
        ("seq_encoder.token_embedding.weight", _Slot((seq.token_embedding.embedding,), False)),
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
    for slot, value in staged:
        slot.write(value)


__all__ = ["from_reference_state_dict", "to_reference_state_dict"]
