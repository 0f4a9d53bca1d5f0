"""The stand-in Carbon directory: deterministic, Carbon-shaped, readable without remote code."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from bridge import inspect_model_dir, write_standin
from bridge.standin import compositional_kmer_rows, standin_config
from bridge.tokenizer import DNA_OPEN_ID, KMER_BASE_ID, all_kmers, tokenize
from geno_lewm_jax.errors import InputError


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_deterministic_for_a_seed(tmp_path, standin_dir):
    again = write_standin(tmp_path / "again", seed=0)
    assert _files(again) == _files(standin_dir)
    other = write_standin(tmp_path / "other", seed=1)
    assert _files(other)["model.safetensors"] != _files(standin_dir)["model.safetensors"]
    assert _files(other)["config.json"] == _files(standin_dir)["config.json"]


def test_config_is_carbon_shaped_and_version_neutral(standin_dir):
    cfg = json.loads((standin_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["vocab_size"], cfg["num_hidden_layers"], cfg["hidden_size"]) == (155776, 2, 64)
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]  # grouped-query attention
    # transformers 4.x reads only a top-level rope_theta and silently ignores rope_parameters.
    assert cfg["rope_theta"] == 5e6 and "rope_parameters" not in cfg
    tok_cfg = json.loads((standin_dir / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and "auto_map" not in tok_cfg
    assert tok_cfg["added_tokens_decoder"][str(DNA_OPEN_ID)]["content"] == "<dna>"


def test_transformers_reads_theta_and_weights(standin_dir):
    import torch
    from transformers import AutoConfig, AutoModel
    from safetensors.numpy import load_file

    cfg = AutoConfig.from_pretrained(str(standin_dir), local_files_only=True)
    theta = getattr(cfg, "rope_parameters", None) or {"rope_theta": cfg.rope_theta}
    assert theta["rope_theta"] == 5e6
    model = AutoModel.from_pretrained(str(standin_dir), local_files_only=True, dtype=torch.float32)
    weights = load_file(str(standin_dir / "model.safetensors"))
    np.testing.assert_array_equal(model.embed_tokens.weight.detach().numpy(), weights["model.embed_tokens.weight"])
    assert model.layers[0].self_attn.k_proj.weight.shape == (32, 64)


def test_tokenizer_json_implements_the_dna_rule(standin_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(standin_dir), local_files_only=True, trust_remote_code=False)
    seq = "ACGTNAcgtacgGGGGGG"
    assert tok(f"<dna>{seq}</dna>")["input_ids"] == tokenize(seq).tolist()
    assert tok.pad_token_id == 151643


def test_inspect_accepts_it(standin_dir):
    files = inspect_model_dir(standin_dir)
    assert (files.num_layers, files.hidden_size, files.pad_id) == (2, 64, 151643)
    assert [p.name for p in files.weight_files] == ["model.safetensors"]


DEFAULT_WEIGHTS_SHA256 = "d6566990b261f03ccd80e057f490d9727ea4e42992be777855f0b917831c1bc1"


def _weights_digest(weights):
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(weights[name].tobytes())
    return digest.hexdigest()


def test_default_weights_are_pinned(standin_dir):
    """The default stand-in (seed 0, random embeddings) keeps the values every other test was written against."""
    assert _weights_digest(load_file(str(standin_dir / "model.safetensors"))) == DEFAULT_WEIGHTS_SHA256


def test_compositional_embeddings_change_only_the_6mer_rows(tmp_path, standin_dir):
    comp = load_file(str(write_standin(tmp_path / "comp", seed=0, embeddings="compositional") / "model.safetensors"))
    default = load_file(str(standin_dir / "model.safetensors"))
    assert comp.keys() == default.keys()
    for name in default:
        if name != "model.embed_tokens.weight":
            np.testing.assert_array_equal(comp[name], default[name])
    kmers = slice(KMER_BASE_ID, KMER_BASE_ID + 4096)
    outside = np.ones(len(default["model.embed_tokens.weight"]), bool)
    outside[kmers] = False
    np.testing.assert_array_equal(comp["model.embed_tokens.weight"][outside], default["model.embed_tokens.weight"][outside])
    np.testing.assert_array_equal(comp["model.embed_tokens.weight"][kmers], compositional_kmer_rows(0, 64))


def test_compositional_rows_give_an_snv_the_same_effect_in_every_context():
    """Swapping base A for G moves a 6-mer's row by one vector, whatever the other bases and the position."""
    rows = compositional_kmer_rows(0, 64)
    ids = {kmer: i for i, kmer in enumerate(all_kmers())}
    rng = np.random.default_rng(0)
    effects = []
    for _ in range(50):
        kmer = list(rng.choice(list("ACGT"), 6))
        pos = int(rng.integers(6))
        ref, alt = kmer.copy(), kmer.copy()
        ref[pos], alt[pos] = "A", "G"
        effects.append(rows[ids["".join(alt)]] - rows[ids["".join(ref)]])
    effects = np.array(effects)
    spread = np.linalg.norm(effects - effects.mean(0), axis=1).mean()
    assert spread < 0.25 * np.linalg.norm(effects.mean(0))  # one shared effect plus the small random part
    assert np.std(rows) == pytest.approx(0.02, rel=0.1)  # the random rows' scale


def test_500m_size_config_without_writing_weights():
    cfg = standin_config("500m")
    shape = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"])
    assert shape == (1024, 24, 16, 8) and (cfg["head_dim"], cfg["intermediate_size"]) == (64, 2816)
    assert cfg["vocab_size"] == 155776 and cfg["torch_dtype"] == "bfloat16"
    embed = cfg["vocab_size"] * cfg["hidden_size"]
    attention = cfg["hidden_size"] * cfg["head_dim"] * 2 * (cfg["num_attention_heads"] + cfg["num_key_value_heads"])
    per_layer = attention + 3 * cfg["hidden_size"] * cfg["intermediate_size"]
    gigabytes = 2 * (embed + cfg["num_hidden_layers"] * per_layer) / 1e9
    assert 0.85 < gigabytes < 0.95  # about 0.9 GB in bf16
    assert standin_config("tiny").keys() == cfg.keys()


def test_bad_size_or_embeddings_name_the_argument(tmp_path):
    with pytest.raises(InputError) as info:
        write_standin(tmp_path / "x", size="7b")
    assert info.value.details["field"] == "size"
    with pytest.raises(InputError) as info:
        write_standin(tmp_path / "x", embeddings="learned")
    assert info.value.details["field"] == "embeddings"
    assert not (tmp_path / "x").exists()  # nothing written
