"""Native DNA tokenizer: pinned ids, padding, errors, and parity with geno-lewm 0.2.1's tokenizer path."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.tokenizer import (
    DEFAULT_PAD_ID,
    DNA_CLOSE_ID,
    DNA_OPEN_ID,
    KMER_BASE_ID,
    OOV_ID,
    all_kmers,
    length_buckets,
    tokenize,
    tokenize_batch,
    window_sha256,
)
from geno_lewm_jax.errors import InputError


@pytest.mark.parametrize(
    "kmer,expected",
    [("AAAAAA", 151672), ("ATCGAT", 152105), ("CGATCG", 154515), ("CCCCCC", 154402), ("GGGGGG", 155767)],
)
def test_pinned_kmer_ids(kmer, expected):
    assert tokenize(kmer).tolist() == [DNA_OPEN_ID, expected, DNA_CLOSE_ID]


def test_all_kmers_in_id_order():
    kmers = all_kmers()
    assert len(kmers) == 4096 and kmers[0] == "AAAAAA" and kmers[1] == "AAAAAT" and kmers[-1] == "GGGGGG"
    assert tokenize("".join(kmers))[1:-1].tolist() == list(range(KMER_BASE_ID, KMER_BASE_ID + 4096))


def test_tail_padded_with_a_and_n_chunks_are_oov():
    assert tokenize("GGGGGGATC").tolist() == tokenize("GGGGGGATCAAA").tolist()
    ids = tokenize("ACGTNAGGGGGGN").tolist()
    assert ids == [DNA_OPEN_ID, OOV_ID, 155767, OOV_ID, DNA_CLOSE_ID]
    assert tokenize("acgtnagg").tolist() == tokenize("ACGTNAGG").tolist()


@pytest.mark.parametrize("length,tokens", [(1, 3), (6, 3), (7, 4), (4096, 685), (12288, 2050), (24576, 4098)])
def test_token_count(length, tokens):
    assert tokenize("C" * length).size == tokens


def test_batch_right_padded_with_mask():
    batch = tokenize_batch(["ACGTAC" * 3, "A", "acgtacG"], pad_to_multiple=4)
    assert batch.input_ids.shape == (3, 8)
    assert batch.attention_mask.sum(axis=1).tolist() == [5, 3, 4]
    assert batch.n_content.tolist() == [3, 1, 2]
    assert (batch.input_ids[1, 3:] == DEFAULT_PAD_ID).all()
    assert (batch.input_ids[batch.attention_mask == 0] == DEFAULT_PAD_ID).all()


def test_length_buckets_cover_sorted_tight_groups():
    lengths = [500, 3, 700, 3, 9, 1000, 8, 520, 510, 505]
    groups = length_buckets(lengths, 3)
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert all(len(g) <= 3 for g in groups)
    assert [[lengths[i] for i in g] for g in groups] == [[3, 3, 8], [9], [500, 505, 510], [520], [700], [1000]]


@pytest.mark.parametrize(
    "batch,field",
    [
        (["ACGT", "ACGX"], "sequences[1]"),
        (["ACGT", "ACG T"], "sequences[1]"),
        (["ACGé"], "sequences[0]"),
        (["ACGT", ""], "sequences[1]"),
        ([b"ACGT"], "sequences[0]"),
        ([], "sequences"),
        ("ACGT", "sequences"),
    ],
)
def test_bad_windows_name_the_window(batch, field):
    with pytest.raises(InputError) as err:
        tokenize_batch(batch)
    assert field in str(err.value)
    assert err.value.details["field"] == field


def test_window_sha256_is_case_insensitive_and_content_addressed():
    assert window_sha256("acgtN") == window_sha256("ACGTN")
    assert window_sha256("ACGTN") != window_sha256("ACGTA")
    assert len(window_sha256("A")) == 64


def test_parity_with_reference_tokenizer_path(standin_dir, windows):
    """500 random windows (1-13,000 bp, ragged, some with N): ids and mask equal geno-lewm 0.2.1's path."""
    from transformers import AutoTokenizer

    from geno_lewm.encoder.carbon import _tokenize
    from geno_lewm.encoder.windowing import canonicalize_dna, wrap_dna_for_tokenizer

    rng = np.random.default_rng(1234)
    seqs = windows(rng, 500)
    assert any(len(s) % 6 for s in seqs) and any("N" in s.upper() for s in seqs) and any(len(s) > 12000 for s in seqs)
    tok = AutoTokenizer.from_pretrained(str(standin_dir), local_files_only=True, trust_remote_code=False)
    for start in range(0, 500, 100):
        chunk = seqs[start : start + 100]
        ref = _tokenize(tok, [wrap_dna_for_tokenizer(canonicalize_dna(s)) for s in chunk])
        mine = tokenize_batch(chunk)
        np.testing.assert_array_equal(mine.input_ids, ref["input_ids"].numpy())
        np.testing.assert_array_equal(mine.attention_mask, ref["attention_mask"].numpy())
