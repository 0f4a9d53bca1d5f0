"""CarbonEncoder: legacy parity with geno-lewm 0.2.1, the v2 contract, metadata and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge import CarbonEncoder, write_standin
from bridge.tokenizer import tokenize_batch
from geno_lewm_jax.errors import InputError, OutOfWindowError

_ENCODERS: dict = {}


def encoder(root, **kwargs) -> CarbonEncoder:
    """One encoder per setting for the whole module (loading is the slow part)."""
    key = (str(root), tuple(sorted(kwargs.items())))
    if key not in _ENCODERS:
        _ENCODERS[key] = CarbonEncoder(root, **kwargs)
    return _ENCODERS[key]


def reference(root, dtype, state_layer):
    from geno_lewm.encoder.carbon import CarbonStateEncoder

    return CarbonStateEncoder(str(root), "main", dtype=dtype, state_layer=state_layer, pool_radius=8)


def _loci(rng, seqs, none_rate=0.3):
    out = []
    for s in seqs:
        pick = rng.random()
        out.append(None if pick < none_rate else int(rng.choice([0, 5, len(s) - 1, rng.integers(0, len(s))])))
    return out


@pytest.mark.parametrize("dtype,state_layer", [("fp32", 1), ("fp32", -1), ("fp32", 0), ("bf16", 2)])
def test_legacy_matches_reference(standin_dir, windows, dtype, state_layer):
    """Mixed lengths in one call (so the reference's global mean reads padding rows), global and centred."""
    rng = np.random.default_rng(7 + state_layer)
    seqs = windows(rng, 6, hi=3000) + ["ACGTNN" * 700]
    loci = _loci(rng, seqs)
    loci[0], loci[1] = None, 3
    ref = np.asarray(reference(standin_dir, dtype, state_layer).encode_batch(seqs, loci), dtype=np.float64)
    got = encoder(standin_dir, dtype=dtype, state_layer=state_layer, state_contract="legacy_raw_v1").encode_batch(seqs, loci)
    assert got.dtype == np.float32 and got.shape == (7, 64)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    # The quirks matter at this tolerance: the v2 pooling of the same states is far from the reference.
    v2 = encoder(standin_dir, dtype=dtype, state_layer=state_layer).encode_batch(seqs, loci)
    scale = np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(v2 * scale - ref).max() > 1e-3


def test_legacy_single_windows_match_reference(standin_dir):
    ref = reference(standin_dir, "fp32", 2)
    enc = encoder(standin_dir, dtype="fp32", state_layer=2, state_contract="legacy_raw_v1")
    for seq, locus in [("ACGTA", 4), ("G" * 12288, 6000), ("ACGTN" * 821, None), ("T" * 4096, 4095)]:
        want = np.asarray(ref.encode(seq, locus))
        np.testing.assert_allclose(enc.encode_batch([seq], [locus])[0], want, rtol=0, atol=1e-5)
        assert abs(np.linalg.norm(want) - 1) > 1e-3  # legacy states are raw, not unit norm


def _manual_v2(standin_dir, seq, locus, state_layer=2, radius=8):
    """v2 by hand from the untruncated model: content rows only, centre 1 + locus // 6, then L2."""
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(standin_dir), local_files_only=True, dtype=torch.float32).eval()
    batch = tokenize_batch([seq])
    with torch.inference_mode():
        states = full(input_ids=torch.from_numpy(batch.input_ids), output_hidden_states=True).hidden_states[state_layer][0]
    n = int(batch.n_content[0])
    if locus is None:
        lo, hi = 1, n
    else:
        centre = 1 + locus // 6
        lo, hi = max(1, centre - radius), min(n, centre + radius)
    vec = states[lo : hi + 1].double().mean(0).numpy()
    return vec / np.linalg.norm(vec)


@pytest.mark.parametrize("seq_len,locus", [(4096, None), (4096, 0), (4096, 4095), (997, 500), (61, 30)])
def test_v2_matches_hand_pooling(standin_dir, seq_len, locus):
    seq = "".join(np.random.default_rng(seq_len).choice(list("ACGT"), size=seq_len))
    got = encoder(standin_dir, dtype="fp32", state_layer=2).encode_batch([seq], [locus])[0]
    np.testing.assert_allclose(got, _manual_v2(standin_dir, seq, locus), rtol=0, atol=1e-6)


def test_v2_unit_norm_and_batch_independent(standin_dir, windows):
    enc = encoder(standin_dir, dtype="fp32", state_layer=2, max_batch=3)
    rng = np.random.default_rng(3)
    seqs = windows(rng, 9, hi=6000)
    loci = _loci(rng, seqs)
    together = enc.encode_batch(seqs, loci)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    alone = np.stack([enc.encode_batch([s], [p])[0] for s, p in zip(seqs, loci)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=2e-6)  # padding and batch-mates never leak in


def test_v2_source_and_target_identical_at_same_locus(standin_dir):
    """An unedited target pooled at the edit locus equals the source pooled there: a zero-edit is a zero move."""
    enc = encoder(standin_dir, dtype="fp32", state_layer=2)
    rng = np.random.default_rng(5)
    window = "".join(rng.choice(list("ACGT"), size=4096))
    for locus in (0, 123, 2048, 4095):
        source, target = enc.encode_batch([window, window], [locus, locus])
        np.testing.assert_array_equal(source, target)
        # Across calls of other batch shapes only float rounding may differ (the cache makes reuse exact).
        np.testing.assert_allclose(enc.encode_batch([window], [locus])[0], source, rtol=0, atol=1e-6)
    edited = window[:2048] + ("A" if window[2048] != "A" else "C") + window[2049:]
    source, target = enc.encode_batch([window, edited], [2048, 2048])
    assert np.abs(source - target).max() > 1e-6  # an actual edit does move the state


def test_bf16_encoder_gives_float32_unit_vectors(standin_dir):
    enc = encoder(standin_dir, dtype="bf16", state_layer=2)
    out = enc.encode_batch(["ACGT" * 500, "GGA" * 99], [None, 150])
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    fp32 = encoder(standin_dir, dtype="fp32", state_layer=2).encode_batch(["ACGT" * 500, "GGA" * 99], [None, 150])
    np.testing.assert_allclose(out, fp32, atol=0.05)


def test_meta_and_identity(standin_dir, tmp_path):
    base = encoder(standin_dir, dtype="fp32", state_layer=2)
    meta = base.encode_with_meta(["ACGTAC"], [None])
    assert (meta.contract, meta.identity) == ("l2_normalized_v2", base.identity)
    assert meta.features.shape == (1, base.d_state) == (1, 64)
    assert CarbonEncoder(standin_dir, dtype="fp32", state_layer=2).identity == base.identity
    assert CarbonEncoder(standin_dir, dtype="fp32", state_layer=-1).identity == base.identity  # same layer
    variants = [
        encoder(standin_dir, dtype="fp32", state_layer=2, state_contract="legacy_raw_v1"),
        encoder(standin_dir, dtype="fp32", state_layer=1),
        encoder(standin_dir, dtype="bf16", state_layer=2),
        encoder(standin_dir, dtype="fp32", state_layer=2, pool_radius=4),
        CarbonEncoder(write_standin(tmp_path / "seed1", seed=1), dtype="fp32", state_layer=2),
    ]
    identities = {base.identity} | {v.identity for v in variants}
    assert len(identities) == 6
    assert variants[0].encode_with_meta(["ACGTAC"], [None]).contract == "legacy_raw_v1"


@pytest.mark.parametrize(
    "seqs,loci,error,field",
    [
        (["ACGT", "ACXT"], [None, None], InputError, "sequences[1]"),
        ([], [], InputError, "sequences"),
        (["ACGT"], [4], OutOfWindowError, "loci[0]"),
        (["ACGT", "ACGT"], [None, -1], OutOfWindowError, "loci[1]"),
        (["ACGT"], [None, None], InputError, "loci"),
        (["ACGT"], [True], InputError, "loci[0]"),
        (["ACGT"], [1.5], InputError, "loci[0]"),
        (["ACGT"], None, InputError, "loci"),
    ],
)
def test_bad_inputs_name_the_field(standin_dir, seqs, loci, error, field):
    for contract in ("l2_normalized_v2", "legacy_raw_v1"):
        enc = encoder(standin_dir, dtype="fp32", state_layer=2, state_contract=contract)
        with pytest.raises(error) as err:
            enc.encode_batch(seqs, loci)
        assert err.value.details["field"] == field
        assert field in str(err.value)
