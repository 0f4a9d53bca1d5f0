"""A tiny random Carbon-shaped checkpoint for tests and the embedded default.

Real Carbon weights cannot be downloaded here, so tests run the real code
path on a directory with Carbon's interfaces (Llama architecture, the full
155,776-id vocabulary, the DNA ids, GQA, RoPE theta 5e6) but random values.
Weights come from numpy's seeded generator, not from a framework's
initialiser, so the bytes are the same for a seed whatever the torch or
transformers version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from bridge.tokenizer import DEFAULT_PAD_ID, DNA_CLOSE_ID, DNA_OPEN_ID, KMER_BASE_ID, OOV_ID, all_kmers

VOCAB_SIZE = 155776
HIDDEN = 64
FFN = 176
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
ROPE_THETA = 5_000_000.0
_INIT_STD = 0.02

_SPECIALS = {"<|endoftext|>": DEFAULT_PAD_ID, "<dna>": DNA_OPEN_ID, "</dna>": DNA_CLOSE_ID, "<oov>": OOV_ID}
_UNUSED_BASE = KMER_BASE_ID + 4096


def _model_config() -> dict:
    """config.json in the transformers 4.x layout (top-level rope_theta), which 5.x also reads."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
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
        "torch_dtype": "float32",
        "use_cache": True,
    }


def _weights(seed: int) -> dict[str, np.ndarray]:
    """LlamaForCausalLM tensors (tied head omitted), drawn from one seeded generator in a fixed order."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * _INIT_STD).astype(np.float32)

    def gain() -> np.ndarray:
        # Norm gains near 1 but not 1, so a missing or extra RMSNorm shows in tests.
        return (1.0 + 0.1 * rng.standard_normal(HIDDEN, dtype=np.float32)).astype(np.float32)

    out = {"model.embed_tokens.weight": normal(VOCAB_SIZE, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = gain()
        out[p + "self_attn.q_proj.weight"] = normal(HEADS * HEAD_DIM, HIDDEN)
        out[p + "self_attn.k_proj.weight"] = normal(KV_HEADS * HEAD_DIM, HIDDEN)
        out[p + "self_attn.v_proj.weight"] = normal(KV_HEADS * HEAD_DIM, HIDDEN)
        out[p + "self_attn.o_proj.weight"] = normal(HIDDEN, HEADS * HEAD_DIM)
        out[p + "post_attention_layernorm.weight"] = gain()
        out[p + "mlp.gate_proj.weight"] = normal(FFN, HIDDEN)
        out[p + "mlp.up_proj.weight"] = normal(FFN, HIDDEN)
        out[p + "mlp.down_proj.weight"] = normal(HIDDEN, FFN)
    out["model.norm.weight"] = gain()
    return out


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


def write_standin(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the stand-in Carbon directory at ``path`` (deterministic for ``seed``) and return it."""
    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    save_file(_weights(int(seed)), str(root / "model.safetensors"), metadata={"format": "pt"})
    _write_json(root / "config.json", _model_config())
    _write_json(root / "generation_config.json", {"eos_token_id": DEFAULT_PAD_ID, "pad_token_id": DEFAULT_PAD_ID})
    _write_json(root / "dna_config.json", _dna_config())
    _write_json(root / "tokenizer_config.json", _tokenizer_config())
    _write_json(
        root / "special_tokens_map.json",
        {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<oov>"},
    )
    (root / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    return root
