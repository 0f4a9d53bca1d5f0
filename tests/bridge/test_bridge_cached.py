"""Encoding through the cache, and the ``python -m bridge.encode`` pre-fill."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge import CarbonEncoder, FeatureCache, encode_with_cache
from bridge.cached import cache_keys
from bridge.encode import main, owns
from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InvalidConfigError, exit_code_for
from geno_lewm_jax.training.carbon_batches import state_pairs


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory):
    from geno_lewm_jax.data import make_synthetic_snapshot

    return make_synthetic_snapshot(tmp_path_factory.mktemp("snap") / "s", n_windows=3, window_bp=1024)


def _argv(standin_dir, snapshot_dir, cache_dir, *extra):
    return [
        "bridge.encode",
        "--flagfile=configs/tiny.flags",
        f"--model_dir={standin_dir}",
        f"--dataset_dir={snapshot_dir}",
        f"--feature_cache_dir={cache_dir}",
        "--batch_size=8",
        "--noprogress",
        *extra,
    ]


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _config(standin_dir, snapshot_dir, cache_dir, contract="l2_normalized_v2"):
    return load_config(
        overrides={
            "encoder.model_dir": str(standin_dir),
            "encoder.dtype": "fp32",
            "encoder.state_layer": 1,  # as configs/tiny.flags
            "encoder.state_contract": contract,
            "encoder.feature_cache_dir": str(cache_dir),
            "predictor.d_state": 64,
            "data.dataset_dir": str(snapshot_dir),
            "data.batch_size": 8,
            "runtime.device": "cpu",
        }
    )


def _expected_states(config, splits=("train",)):
    from geno_lewm_jax.data import TupleStream, load_snapshot

    snapshot = load_snapshot(config.data.dataset_dir)
    out = {}
    for split in splits:
        stream = TupleStream.from_config(snapshot, config, split=split, process_index=0, process_count=1)
        n = -(-stream.tuples_per_epoch // stream.batch_size)
        for batch in stream.take(n):
            for t in batch.tuples:
                for state in state_pairs(t, config.encoder.state_contract):
                    out[state] = None
    return list(out)


def test_encode_with_cache_reads_back_bit_exact(standin_dir, tmp_path, monkeypatch):
    enc = CarbonEncoder(standin_dir, dtype="fp32", state_layer=2, max_batch=2)
    cache = FeatureCache(tmp_path / "c")
    seqs, loci = ["ACGT" * 100, "GGA" * 77, "ACGT" * 100, "T" * 50], [None, 5, 7, 49]
    first = encode_with_cache(enc, cache, seqs, loci)
    np.testing.assert_allclose(first, enc.encode_batch(seqs, loci), rtol=0, atol=1e-6)
    assert len(cache) == 4

    def boom(*args, **kwargs):
        raise AssertionError("a cached key was re-encoded")

    monkeypatch.setattr(enc, "encode_batch", boom)
    again = encode_with_cache(enc, FeatureCache(tmp_path / "c"), seqs, loci)
    np.testing.assert_array_equal(again.view(np.uint32), first.view(np.uint32))


def test_legacy_cache_values_do_not_depend_on_batch_mates(standin_dir, tmp_path):
    enc = CarbonEncoder(standin_dir, dtype="fp32", state_layer=2, state_contract="legacy_raw_v1")
    seqs, loci = ["ACGT" * 100, "GGA" * 400], [None, None]
    got = encode_with_cache(enc, FeatureCache(tmp_path / "c"), seqs, loci)
    alone = np.stack([enc.encode_batch([s], [p])[0] for s, p in zip(seqs, loci)])
    np.testing.assert_array_equal(got, alone)
    assert np.abs(enc.encode_batch(seqs, loci)[0] - alone[0]).max() > 1e-6  # batched legacy reads padding


def test_owns_partitions_windows():
    windows = ["".join(np.random.default_rng(i).choice(list("ACGT"), 30)) for i in range(200)]
    shares = [[w for w in windows if owns(w, p, 3)] for p in range(3)]
    assert sorted(sum(shares, [])) == sorted(windows) and all(shares)
    assert owns("acgt", 1, 3) == owns("ACGT", 1, 3)


def test_prefill_cli_encodes_what_training_asks_for(standin_dir, snapshot_dir, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    assert main(_argv(standin_dir, snapshot_dir, cache_dir, "--splits=train,validation")) == 0
    summary = _summary(capsys)
    config = _config(standin_dir, snapshot_dir, cache_dir)
    states = _expected_states(config, ("train", "validation"))
    assert summary["unique_owned"] == summary["encoded"] == len(states) > 0 and summary["already_cached"] == 0
    enc = CarbonEncoder.from_config(config)
    assert summary["identity"] == enc.identity
    cache = FeatureCache(cache_dir)
    assert len(cache) == len(states)
    sample = states[:: max(1, len(states) // 6)]
    keys = cache_keys(enc, [w for w, _ in sample], [p for _, p in sample])
    np.testing.assert_allclose(
        np.stack(cache.get_many(keys)), enc.encode_batch([w for w, _ in sample], [p for _, p in sample]), atol=2e-6
    )
    # A second run finds everything cached.
    assert main(_argv(standin_dir, snapshot_dir, cache_dir, "--splits=train,validation")) == 0
    again = _summary(capsys)
    assert again["encoded"] == 0 and again["already_cached"] == len(states)


def test_prefill_split_across_processes_encodes_each_key_once(standin_dir, snapshot_dir, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    encoded = []
    for pid in range(2):
        assert main(_argv(standin_dir, snapshot_dir, cache_dir, f"--process_id={pid}", "--num_processes=2")) == 0
        encoded.append(_summary(capsys)["encoded"])
    states = _expected_states(_config(standin_dir, snapshot_dir, cache_dir))
    assert all(encoded) and sum(encoded) == len(states) == len(FeatureCache(cache_dir))


def test_prefill_legacy_contract_keys(standin_dir, snapshot_dir, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    argv = _argv(standin_dir, snapshot_dir, cache_dir, "--state_contract=legacy_raw_v1", "--stream=legacy")
    assert main(argv) == 0
    summary = _summary(capsys)
    config = _config(standin_dir, snapshot_dir, cache_dir, "legacy_raw_v1").replace({"data.stream": "legacy"})
    states = _expected_states(config)
    assert any(p is None for _, p in states)  # legacy sources pool the whole window
    assert summary["encoded"] == len(states) and summary["contract"] == "legacy_raw_v1"


@pytest.mark.parametrize(
    "extra,field",
    [(("--feature_cache_dir=",), "encoder.feature_cache_dir"), (("--epochs=0",), "epochs"), (("--splits=test",), "splits")],
)
def test_prefill_bad_arguments_exit_2_with_one_line(standin_dir, snapshot_dir, tmp_path, capsys, extra, field):
    assert main(_argv(standin_dir, snapshot_dir, tmp_path / "c", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[CONFIG.INVALID_VALUE]") and field in err
    assert exit_code_for(InvalidConfigError("x")) == 2
