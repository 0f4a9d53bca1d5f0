"""A random Carbon-shaped checkpoint for tests, the embedded default and benchmarks.

Real Carbon weights cannot be downloaded here, so tests run the real code
path on a directory with Carbon's interfaces (Llama architecture, the full
155,776-id vocabulary, the DNA ids, GQA, RoPE theta 5e6) but random values.
Weights come from numpy's seeded generator, not from a framework's
initialiser, so the bytes are the same for a seed whatever the torch or
transformers version.

Two sizes: ``tiny`` (2 layers of width 64, float32: tests and the embedded
default) and ``500m`` (Carbon-500M's shape in bf16, about 0.9 GB: benchmarks).
Two kinds of 6-mer embeddings: ``random`` (the default, whose bytes tests pin)
and ``compositional`` (built from the 6-mer's bases, see
:func:`compositional_kmer_rows`), with which an edit's effect on a pooled
state can be learned, as the embedded default needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from safetensors.numpy import save_file

from bridge.tokenizer import DEFAULT_PAD_ID, DNA_CLOSE_ID, DNA_OPEN_ID, KMER_BASE_ID, OOV_ID, K, all_kmers
from geno_lewm_jax.errors import InputError

VOCAB_SIZE = 155776
ROPE_THETA = 5_000_000.0
_INIT_STD = 0.02
COMPOSITIONAL_NOISE = 0.005
"""Share of a compositional 6-mer row's variance that is the row's own random part."""
COMPOSITIONAL_COMMON = 0.2
"""Scale of the vector common to every compositional 6-mer row, relative to the bases' part."""

Size = Literal["tiny", "500m"]
Embeddings = Literal["random", "compositional"]


@dataclasses.dataclass(frozen=True)
class StandinShape:
    """The architecture numbers of one stand-in size."""

    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    dtype: str


SIZES: dict[str, StandinShape] = {
    # Tests and the embedded default: seconds to write, a few MB.
    "tiny": StandinShape(hidden=64, ffn=176, layers=2, heads=4, kv_heads=2, head_dim=16, dtype="float32"),
    # Carbon-500M's shape for benchmarks (about 0.9 GB in bf16); never written in CI.
    "500m": StandinShape(hidden=1024, ffn=2816, layers=24, heads=16, kv_heads=8, head_dim=64, dtype="bfloat16"),
}

_SPECIALS = {"<|endoftext|>": DEFAULT_PAD_ID, "<dna>": DNA_OPEN_ID, "</dna>": DNA_CLOSE_ID, "<oov>": OOV_ID}
_UNUSED_BASE = KMER_BASE_ID + 4096


def _shape(size: str) -> StandinShape:
    if size not in SIZES:
        raise InputError(
            f"stand-in size must be one of {sorted(SIZES)}, got {size!r}", details={"field": "size", "value": repr(size)}
        )
    return SIZES[size]


def standin_config(size: Size = "tiny") -> dict:
    """config.json of a stand-in ``size`` in the transformers 4.x layout (top-level rope_theta), which 5.x also reads."""
    shape = _shape(size)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": shape.hidden,
        "intermediate_size": shape.ffn,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "head_dim": shape.head_dim,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": _INIT_STD,
        "pretraining_tp": 1,
        "tie_word_embeddings": True,
        "bos_token_id": None,
        "eos_token_id": DEFAULT_PAD_ID,
        "pad_token_id": DEFAULT_PAD_ID,
        "rope_theta": ROPE_THETA,
        "rope_scaling": None,
        "torch_dtype": shape.dtype,
        "use_cache": True,
    }


def _weights(seed: int, shape: StandinShape) -> dict[str, np.ndarray]:
    """LlamaForCausalLM tensors (tied head omitted), float32, drawn from one seeded generator in a fixed order."""
    rng = np.random.default_rng(seed)
    hidden = shape.hidden

    def normal(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims, dtype=np.float32) * _INIT_STD).astype(np.float32)

    def gain() -> np.ndarray:
        # Norm gains near 1 but not 1, so a missing or extra RMSNorm shows in tests.
        return (1.0 + 0.1 * rng.standard_normal(hidden, dtype=np.float32)).astype(np.float32)

    out = {"model.embed_tokens.weight": normal(VOCAB_SIZE, hidden)}
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = gain()
        out[p + "self_attn.q_proj.weight"] = normal(shape.heads * shape.head_dim, hidden)
        out[p + "self_attn.k_proj.weight"] = normal(shape.kv_heads * shape.head_dim, hidden)
        out[p + "self_attn.v_proj.weight"] = normal(shape.kv_heads * shape.head_dim, hidden)
        out[p + "self_attn.o_proj.weight"] = normal(hidden, shape.heads * shape.head_dim)
        out[p + "post_attention_layernorm.weight"] = gain()
        out[p + "mlp.gate_proj.weight"] = normal(shape.ffn, hidden)
        out[p + "mlp.up_proj.weight"] = normal(shape.ffn, hidden)
        out[p + "mlp.down_proj.weight"] = normal(hidden, shape.ffn)
    out["model.norm.weight"] = gain()
    return out


def compositional_kmer_rows(seed: int, hidden: int) -> np.ndarray:
    """float32 [4096, hidden]: 6-mer rows (in id order) built from their bases, at the random rows' scale.

    A row is the sum over its six positions of the vector of the base there (four
    vectors, centred, the same at every position), plus a vector common to every
    6-mer (``COMPOSITIONAL_COMMON`` of the bases' scale), plus a small random part of
    its own (``COMPOSITIONAL_NOISE`` of the variance). So an SNV moves its 6-mer by
    ``v[alt] - v[ref]``; an indel, which shifts the 6-mer frame of every later token,
    moves a pooled stretch by little more than its own bases' vectors, because a
    base's vector does not depend on its position; and the common vector keeps a
    pooled state's norm steady, so an edit's effect has a steady scale. A predictor
    can learn these effects from the edit alone; with random rows there is nothing
    to learn.
    """
    rng = np.random.default_rng([seed, K])  # its own stream: the other tensors' draws stay those of the default
    bases = rng.standard_normal((4, hidden), dtype=np.float32)
    bases = (bases - bases.mean(axis=0)) / np.sqrt(0.75)  # centred, unit variance per entry again
    common = rng.standard_normal(hidden, dtype=np.float32)
    digits = (np.arange(4**K)[:, None] // 4 ** np.arange(K - 1, -1, -1)[None, :]) % 4  # [4096, K] base codes
    rows = (bases[digits].sum(axis=1) / np.sqrt(K) + COMPOSITIONAL_COMMON * common) / np.sqrt(1 + COMPOSITIONAL_COMMON**2)
    noise = rng.standard_normal((4**K, hidden), dtype=np.float32)
    mixed = np.sqrt(1.0 - COMPOSITIONAL_NOISE) * rows + np.sqrt(COMPOSITIONAL_NOISE) * noise
    return (mixed * _INIT_STD).astype(np.float32)


def _tokenizer_json() -> str:
    """A WordLevel tokenizer.json with the DNA rule that AutoTokenizer loads with no remote code.

    WordLevel cannot A-pad a ragged tail, so callers pad windows to a multiple
    of 6 first (as geno-lewm 0.2.1 does); the native tokenizer pads itself.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = dict(_SPECIALS)
    vocab.update({kmer: KMER_BASE_ID + i for i, kmer in enumerate(all_kmers())})
    vocab.update({f"<unused_{i}>": _UNUSED_BASE + i for i in range(VOCAB_SIZE - _UNUSED_BASE)})
    tok = Tokenizer(WordLevel(vocab, unk_token="<oov>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Strip()] + [normalizers.Replace(b.lower(), b) for b in "ACGT"]
    )
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(".{1,6}"), behavior="isolated")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _SPECIALS])
    return tok.to_str(pretty=False)


def _tokenizer_config() -> dict:
    """tokenizer_config.json in the 4.x style: loadable by both majors, pad resolvable by id."""
    decoder = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
        for t, i in sorted(_SPECIALS.items(), key=lambda kv: kv[1])
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": decoder,
        "pad_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<oov>",
        "bos_token": None,
        "padding_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        "model_max_length": 32768,
    }


def _dna_config() -> dict:
    return {
        "k": 6,
        "dna_start_id": DNA_OPEN_ID,
        "dna_vocab_size": 3 + 4096 + 8,
        "dna_special_tokens": ["<dna>", "</dna>", "<oov>"],
        "auto_dna_tags": False,
    }


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_standin(
    path: str | os.PathLike[str], seed: int = 0, *, size: Size = "tiny", embeddings: Embeddings = "random"
) -> Path:
    """Write the stand-in Carbon directory at ``path`` (deterministic for its arguments) and return it.

    ``size``: ``"tiny"`` (the default; tests and the embedded default) or ``"500m"``
    (Carbon-500M's shape in bf16, about 0.9 GB, for benchmarks). ``embeddings``:
    ``"random"`` (the default) or ``"compositional"`` 6-mer rows (see
    :func:`compositional_kmer_rows`); every other tensor is the same for a seed.
    """
    shape = _shape(size)
    if embeddings not in ("random", "compositional"):
        raise InputError(
            f"stand-in embeddings must be 'random' or 'compositional', got {embeddings!r}",
            details={"field": "embeddings", "value": repr(embeddings)},
        )
    weights = _weights(int(seed), shape)
    if embeddings == "compositional":
        weights["model.embed_tokens.weight"][KMER_BASE_ID : KMER_BASE_ID + 4**K] = compositional_kmer_rows(
            int(seed), shape.hidden
        )
    if shape.dtype == "bfloat16":
        import ml_dtypes

        weights = {name: w.astype(ml_dtypes.bfloat16) for name, w in weights.items()}
    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(root / "model.safetensors"), metadata={"format": "pt"})
    _write_json(root / "config.json", standin_config(size))
    _write_json(root / "generation_config.json", {"eos_token_id": DEFAULT_PAD_ID, "pad_token_id": DEFAULT_PAD_ID})
    _write_json(root / "dna_config.json", _dna_config())
    _write_json(root / "tokenizer_config.json", _tokenizer_config())
    _write_json(
        root / "special_tokens_map.json",
        {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<oov>"},
    )
    (root / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    return root
