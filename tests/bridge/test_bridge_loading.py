"""Model-dir validation, the truncated load, and the typed errors for bad directories and settings."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from bridge import CarbonEncoder
from bridge.tokenizer import tokenize_batch
from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InvalidConfigError, ModelCorruptError, ModelNotFoundError


@pytest.fixture
def copy_dir(standin_dir, tmp_path):
    """A private copy of the stand-in (the weights are hard-linked when a test does not rewrite them)."""

    def make(link_weights: bool = True):
        dst = tmp_path / "carbon"
        shutil.copytree(standin_dir, dst, copy_function=os.link if link_weights else shutil.copy2)
        if link_weights:  # only the weights stay linked; rewrite-prone small files become copies
            for p in dst.iterdir():
                if p.name != "model.safetensors":
                    data = p.read_bytes()
                    p.unlink()
                    p.write_bytes(data)
        return dst

    return make


def _batch(rng):
    seqs = ["".join(rng.choice(list("ACGTN"), size=n)) for n in (5, 600, 1234)]
    return tokenize_batch(seqs)


@pytest.mark.parametrize("state_layer", [0, 1, 2, -1, -2, -3])
def test_truncated_model_equals_full_hidden_states(standin_dir, state_layer):
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(standin_dir), local_files_only=True, dtype=torch.float32).eval()
    enc = CarbonEncoder(standin_dir, dtype="fp32", state_layer=state_layer)
    assert len(enc.model.layers) == enc.state_layer == state_layer % 3
    batch = _batch(np.random.default_rng(state_layer + 10))
    ids, mask = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
    with torch.inference_mode():
        want = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[state_layer]
        got = enc.model(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=0, atol=1e-6)
    if state_layer % 3 != 2:  # the final RMSNorm must only apply to the last entry
        assert not torch.allclose(full.norm(got[real]), want[real], atol=1e-3)


def test_later_layers_are_not_loaded(standin_dir):
    enc = CarbonEncoder(standin_dir, dtype="fp32", state_layer=1)
    names = [n for n, _ in enc.model.named_parameters()]
    assert not any(n.startswith("layers.1.") for n in names) and "norm.weight" not in names
    assert all(not p.requires_grad for p in enc.model.parameters())


def test_sharded_checkpoint_loads_the_same(standin_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    dst = tmp_path / "sharded"
    shutil.copytree(standin_dir, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = load_file(str(standin_dir / "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(dst / fname), metadata={"format": "pt"})
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    seqs, loci = ["ACGT" * 300, "GATTACA" * 40], [None, 17]
    single = CarbonEncoder(standin_dir, dtype="fp32", state_layer=2)
    sharded = CarbonEncoder(dst, dtype="fp32", state_layer=2)
    np.testing.assert_array_equal(sharded.encode_batch(seqs, loci), single.encode_batch(seqs, loci))
    assert sharded.identity != single.identity  # the weight files differ, so the identity does
    (dst / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="model-00002-of-00002.safetensors"):
        CarbonEncoder(dst, dtype="fp32", state_layer=2)


def test_missing_directory_and_files(tmp_path, copy_dir):
    with pytest.raises(ModelNotFoundError, match="encoder.model_dir"):
        CarbonEncoder(tmp_path / "nope", state_layer=2)
    root = copy_dir()
    (root / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        CarbonEncoder(root, state_layer=2)


def test_missing_weights(copy_dir):
    root = copy_dir()
    (root / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="model.safetensors"):
        CarbonEncoder(root, state_layer=2)


@pytest.mark.parametrize(
    "fname,payload,match",
    [
        ("config.json", "{not json", "config.json"),
        ("config.json", json.dumps({"model_type": "gpt2", "hidden_size": 64}), "model_type"),
        ("config.json", "patch:vocab_size=1000", "vocab_size"),
        ("dna_config.json", "patch:dna_start_id=151000", "dna_config.json"),
        ("tokenizer.json", "swap", "tokenizer.json"),
        ("tokenizer.json", "[1, 2]", "tokenizer.json"),
    ],
)
def test_corrupt_small_files_name_the_file(copy_dir, fname, payload, match):
    root = copy_dir()
    path = root / fname
    if payload.startswith("patch:"):
        field, value = payload[len("patch:") :].split("=")
        doc = json.loads(path.read_text())
        doc[field] = int(value)
        path.write_text(json.dumps(doc))
    elif payload == "swap":  # two 6-mers exchange ids: the file no longer implements the rule
        doc = json.loads(path.read_text())
        vocab = doc["model"]["vocab"]
        vocab["AAAAAA"], vocab["AAAAAT"] = vocab["AAAAAT"], vocab["AAAAAA"]
        path.write_text(json.dumps(doc))
    else:
        path.write_text(payload)
    with pytest.raises(ModelCorruptError, match=match) as err:
        CarbonEncoder(root, state_layer=2)
    assert fname in err.value.details["file"] or fname in str(err.value)


def test_truncated_weights_name_the_file(copy_dir):
    root = copy_dir(link_weights=False)
    path = root / "model.safetensors"
    os.truncate(path, path.stat().st_size - 4096)
    with pytest.raises(ModelCorruptError, match="model.safetensors"):
        CarbonEncoder(root, state_layer=2)


def test_missing_tensor_is_not_loaded_as_random(copy_dir):
    from safetensors.numpy import load_file, save_file

    root = copy_dir(link_weights=False)
    tensors = load_file(str(root / "model.safetensors"))
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelCorruptError, match="model.layers.0.mlp.up_proj.weight"):
        CarbonEncoder(root, state_layer=1)


@pytest.mark.parametrize("layer", [3, -4, 100, "2", 1.0, True])
def test_state_layer_out_of_range(standin_dir, layer):
    with pytest.raises(InvalidConfigError, match="encoder.state_layer") as err:
        CarbonEncoder(standin_dir, dtype="fp32", state_layer=layer)
    assert err.value.details["field"] == "encoder.state_layer"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"expected_d_state": 1024}, "predictor.d_state"),
        ({"dtype": "fp64"}, "encoder.dtype"),
        ({"state_contract": "l2"}, "encoder.state_contract"),
        ({"pool_radius": -1}, "encoder.pool_radius"),
        ({"device": "tpu:7"}, "runtime.device"),
    ],
)
def test_bad_settings_name_the_field(standin_dir, kwargs, field):
    with pytest.raises(InvalidConfigError, match=field.replace(".", r"\.")) as err:
        CarbonEncoder(standin_dir, state_layer=2, **kwargs)
    assert err.value.details["field"] == field


def test_from_config(standin_dir):
    config = load_config(
        overrides={
            "encoder.model_dir": str(standin_dir),
            "encoder.dtype": "fp32",
            "encoder.state_layer": 2,
            "predictor.d_state": 64,
            "runtime.device": "cpu",
        }
    )
    enc = CarbonEncoder.from_config(config)
    assert (enc.d_state, enc.state_layer, enc.pool_radius, enc.contract) == (64, 2, 8, "l2_normalized_v2")
    with pytest.raises(InvalidConfigError, match="predictor.d_state"):
        CarbonEncoder.from_config(config.replace({"predictor.d_state": 1024}))
