"""The stand-in Carbon directory: deterministic, Carbon-shaped, readable without remote code."""

from __future__ import annotations

import json

import numpy as np

from bridge import inspect_model_dir, write_standin
from bridge.tokenizer import DNA_OPEN_ID, tokenize


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
