"""Local Carbon directories: validation, tokenizer cross-checks and a truncated model load.

Nothing here touches the network: paths are local, transformers is called
with ``local_files_only=True`` and never with remote code, and every file
is checked before transformers sees it so that a bad directory fails with
a typed error naming the file instead of a deep stack trace (or, worse,
silently random weights for a tensor the checkpoint lacks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geno_lewm_jax.errors import InvalidConfigError, ModelCorruptError, ModelNotFoundError
from bridge.tokenizer import (
    DEFAULT_PAD_ID,
    DNA_OPEN_ID,
    K,
    KMER_BASE_ID,
    N_KMERS,
    all_kmers,
    tokenize,
)

SINGLE_WEIGHTS = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
_DNA_SPECIALS = ("<dna>", "</dna>", "<oov>")
_LAYER_TENSORS = (
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
)


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """What a validated Carbon directory holds."""

    root: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]
    tensor_names: frozenset[str]
    pad_id: int

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCorruptError(
            f"{path}: not readable JSON ({exc.__class__.__name__}: {exc})",
            details={"file": str(path)},
            remediation="re-download or re-copy this file of the Carbon directory",
        ) from None
    if not isinstance(payload, dict):
        raise ModelCorruptError(f"{path}: expected a JSON object", details={"file": str(path)})
    return payload


def _check_config(path: Path, cfg: dict[str, Any]) -> None:
    if cfg.get("model_type") != "llama":
        raise ModelCorruptError(
            f"{path}: model_type is {cfg.get('model_type')!r}; Carbon checkpoints are 'llama'",
            details={"file": str(path), "field": "model_type"},
        )
    for field in ("hidden_size", "num_hidden_layers", "vocab_size"):
        value = cfg.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ModelCorruptError(
                f"{path}: {field} must be a positive integer, got {value!r}", details={"file": str(path), "field": field}
            )
    if cfg["vocab_size"] < KMER_BASE_ID + N_KMERS:
        raise ModelCorruptError(
            f"{path}: vocab_size {cfg['vocab_size']} cannot hold Carbon's DNA ids (need >= {KMER_BASE_ID + N_KMERS})",
            details={"file": str(path), "field": "vocab_size"},
        )


def _weight_files(root: Path) -> tuple[Path, ...]:
    single, index = root / SINGLE_WEIGHTS, root / SHARD_INDEX
    if single.is_file():
        return (single,)
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelCorruptError(f"{index}: has no weight_map", details={"file": str(index)})
        shards = tuple(root / name for name in sorted(set(weight_map.values())))
        for shard in shards:
            if not shard.is_file():
                raise ModelNotFoundError(
                    f"{shard}: listed in {SHARD_INDEX} but missing", details={"file": str(shard)}
                )
        return shards
    raise ModelNotFoundError(
        f"{root}: no {SINGLE_WEIGHTS} or {SHARD_INDEX}",
        details={"file": str(single)},
        remediation="the bridge loads safetensors only; convert a pytorch_model.bin with transformers first",
    )


def _tensor_shapes(files: tuple[Path, ...]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors headers (also proves each file is intact)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    shapes[name] = tuple(handle.get_slice(name).get_shape())
        except Exception as exc:  # safetensors raises its own error type for every header defect
            raise ModelCorruptError(
                f"{path}: not a readable safetensors file ({exc})",
                details={"file": str(path)},
                remediation="the download or copy is incomplete; fetch this file again",
            ) from None
    return shapes


def _check_tensors(root: Path, cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """Every tensor the encoder can run on must be present with its shape; missing ones would load as random."""
    prefix = "model." if any(n.startswith("model.") for n in shapes) else ""
    hidden, vocab = cfg["hidden_size"], cfg["vocab_size"]
    want = {f"{prefix}embed_tokens.weight": (vocab, hidden), f"{prefix}norm.weight": (hidden,)}
    for i in range(cfg["num_hidden_layers"]):
        for leaf in _LAYER_TENSORS:
            want[f"{prefix}layers.{i}.{leaf}"] = None
    for name, shape in want.items():
        if name not in shapes:
            raise ModelCorruptError(
                f"{root}: weights lack tensor {name}", details={"file": str(root), "tensor": name}
            )
        if shape is not None and shapes[name] != shape:
            raise ModelCorruptError(
                f"{root}: tensor {name} has shape {shapes[name]}, config.json implies {shape}",
                details={"file": str(root), "tensor": name},
            )


def _check_dna_config(path: Path) -> None:
    cfg = _read_json(path)
    expect = {"k": K, "dna_start_id": DNA_OPEN_ID, "dna_special_tokens": list(_DNA_SPECIALS), "auto_dna_tags": False}
    for field, value in expect.items():
        if cfg.get(field) != value:
            raise ModelCorruptError(
                f"{path}: {field} is {cfg.get(field)!r}, the bridge's DNA rule needs {value!r}",
                details={"file": str(path), "field": field},
            )
    if not isinstance(cfg.get("dna_vocab_size"), int) or cfg["dna_vocab_size"] < 3 + N_KMERS:
        raise ModelCorruptError(
            f"{path}: dna_vocab_size must be >= {3 + N_KMERS}", details={"file": str(path), "field": "dna_vocab_size"}
        )


def _check_tokenizer_json(path: Path) -> None:
    """Cross-check a DNA-rule tokenizer.json against the native rule (a Qwen BPE file is only checked for the tags)."""
    payload = _read_json(path)
    added = {t.get("content"): t.get("id") for t in payload.get("added_tokens", []) if isinstance(t, dict)}
    for offset, tag in enumerate(_DNA_SPECIALS):
        if tag in added and added[tag] != DNA_OPEN_ID + offset:
            raise ModelCorruptError(
                f"{path}: {tag} has id {added[tag]}, Carbon's DNA rule needs {DNA_OPEN_ID + offset}",
                details={"file": str(path), "token": tag},
            )
    if (payload.get("model") or {}).get("type") != "WordLevel":
        return
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_str(json.dumps(payload))
    except Exception as exc:
        raise ModelCorruptError(f"{path}: tokenizers cannot load it ({exc})", details={"file": str(path)}) from None
    probe = "".join(all_kmers()) + "NACGTA" + "acgtac" + "GGGGGN"
    got = tok.encode(f"<dna>{probe}</dna>", add_special_tokens=False).ids
    want = tokenize(probe).tolist()
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise ModelCorruptError(
            f"{path}: disagrees with Carbon's DNA rule at token {first} "
            f"(file gives {got[first] if first < len(got) else None}, rule gives {want[first] if first < len(want) else None})",
            details={"file": str(path), "token_index": first},
        )


def _pad_id(root: Path, cfg: dict[str, Any]) -> int:
    """The tokenizer's pad id (tokenizer_config pad_token via added_tokens_decoder), else config's, else eos."""
    path = root / "tokenizer_config.json"
    if path.is_file():
        tok_cfg = _read_json(path)
        pad = tok_cfg.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if isinstance(pad, str):
            ids = [int(i) for i, t in (tok_cfg.get("added_tokens_decoder") or {}).items() if t.get("content") == pad]
            if len(ids) == 1:
                return ids[0]
    for field in ("pad_token_id", "eos_token_id"):
        value = cfg.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return DEFAULT_PAD_ID


def inspect_model_dir(model_dir: str | os.PathLike[str]) -> ModelFiles:
    """Validate a local Carbon directory without loading weights; every defect names its file."""
    root = Path(model_dir).expanduser()
    if not str(model_dir) or not root.is_dir():
        raise ModelNotFoundError(
            f"encoder.model_dir {str(model_dir)!r} is not a directory",
            details={"field": "encoder.model_dir", "file": str(root)},
            remediation="point --model_dir at a local Carbon checkpoint (config.json + safetensors); nothing is downloaded",
        )
    config_path = root / "config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(f"{config_path}: missing", details={"file": str(config_path)})
    cfg = _read_json(config_path)
    _check_config(config_path, cfg)
    files = _weight_files(root)
    shapes = _tensor_shapes(files)
    _check_tensors(root, cfg, shapes)
    if (root / "dna_config.json").is_file():
        _check_dna_config(root / "dna_config.json")
    if (root / "tokenizer.json").is_file():
        _check_tokenizer_json(root / "tokenizer.json")
    return ModelFiles(root, cfg, files, frozenset(shapes), _pad_id(root, cfg))


def resolve_state_layer(state_layer: object, num_layers: int) -> int:
    """hidden_states index in [0, L]; negative indices count from the end as Python's do."""
    if not isinstance(state_layer, int) or isinstance(state_layer, bool) or not -(num_layers + 1) <= state_layer <= num_layers:
        raise InvalidConfigError(
            f"encoder.state_layer={state_layer!r} is outside [-{num_layers + 1}, {num_layers}] "
            f"for a model with {num_layers} layers (0 = embeddings, {num_layers} = final normed state)",
            details={"field": "encoder.state_layer", "value": state_layer, "num_hidden_layers": num_layers},
        )
    return state_layer % (num_layers + 1)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the expected 'unused weights' notice for the dropped layers."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if progress:
            hf_logging.enable_progress_bar()


def load_truncated(files: ModelFiles, state_layer: int, torch_dtype: Any) -> Any:
    """``LlamaModel`` holding only the first ``state_layer`` blocks; its output is ``hidden_states[state_layer]``.

    The later blocks' weights are never materialised. HF applies the final
    RMSNorm only to the last entry of ``hidden_states``, so the norm is kept
    when every layer is kept and replaced by identity otherwise.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(files.root), local_files_only=True, trust_remote_code=False)
    config.num_hidden_layers = state_layer
    config.use_cache = False
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    with _quiet_transformers():
        try:
            model, info = AutoModel.from_pretrained(
                str(files.root),
                config=config,
                local_files_only=True,
                trust_remote_code=False,
                output_loading_info=True,
                **{dtype_kw: torch_dtype},
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelCorruptError(
                f"{files.root}: transformers could not load the checkpoint ({exc})", details={"file": str(files.root)}
            ) from None
    missing = [k for k in info.get("missing_keys", ()) if "rotary" not in k]
    if missing:
        raise ModelCorruptError(
            f"{files.root}: checkpoint lacks {len(missing)} tensor(s), e.g. {sorted(missing)[0]}",
            details={"file": str(files.root), "missing": sorted(missing)[:10]},
        )
    if state_layer < files.num_layers:
        model.norm = torch.nn.Identity()
    model.eval()
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) because Carbon weights are gigabytes."""
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
