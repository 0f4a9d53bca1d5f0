"""encode_training_batch's gather: host features in numpy, accelerator features in one jitted program."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np

from geno_lewm.action import EditType
from model_support import random_edit

from geno_lewm_jax.training import carbon_batches
from geno_lewm_jax.training.carbon_batches import encode_training_batch


class IndexEncoder:
    """State i is the vector (i, i, ..., i): a row's value names the pooled row it came from."""

    d_state = 4
    contract = "l2_normalized_v2"

    def __init__(self, as_jax: bool) -> None:
        self.as_jax = as_jax

    def encode_batch_jax(self, sequences, loci):
        pooled = np.repeat(np.arange(len(sequences), dtype=np.float32)[:, None], self.d_state, axis=1)
        return jnp.asarray(pooled) if self.as_jax else pooled


def tuples():
    """Three tuples; the first two share their source window and their first target."""
    rng = np.random.default_rng(1)

    def tup(window, targets):
        edits = [random_edit(rng, EditType.SNV) for _ in targets]
        return types.SimpleNamespace(window=window, locus=5, targets=targets, edits=edits)

    return [tup("AAAA", ["AACA"]), tup("AAAA", ["AACA", "AACC"]), tup("GGGG", ["GGTG"])]


def test_cpu_jax_features_are_gathered_on_the_host_like_numpy_ones():
    from_numpy = encode_training_batch(encoder=IndexEncoder(as_jax=False), tuples=tuples(), k=3)
    from_jax = encode_training_batch(encoder=IndexEncoder(as_jax=True), tuples=tuples(), k=3)
    assert isinstance(from_jax.state, np.ndarray) and isinstance(from_jax.targets, np.ndarray)
    np.testing.assert_array_equal(from_jax.state, from_numpy.state)
    np.testing.assert_array_equal(from_jax.targets, from_numpy.targets)
    # rows: AAAA shared by two tuples (pooled once), padding steps are zero
    np.testing.assert_array_equal(from_numpy.state[:, 0], [0, 0, 3])
    np.testing.assert_array_equal(from_numpy.targets[:, :, 0], [[1, 0, 0], [1, 2, 0], [4, 0, 0]])
    np.testing.assert_array_equal(from_numpy.action_mask, [[1, 0, 0], [1, 1, 0], [1, 0, 0]])


def test_the_accelerator_gather_matches_the_host_one():
    rng = np.random.default_rng(0)
    pooled = rng.standard_normal((7, 5)).astype(np.float32)
    source = np.array([0, 3, 6], dtype=np.int32)
    target = rng.integers(0, 7, (3, 4)).astype(np.int32)
    mask = rng.random((3, 4)) > 0.4
    state, targets = carbon_batches._gather_on_device(jnp.asarray(pooled, dtype=jnp.bfloat16).astype(jnp.float32), source, target, mask)
    expected = np.asarray(jnp.asarray(pooled, dtype=jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(state), expected[source])
    np.testing.assert_array_equal(np.asarray(targets), np.where(mask[..., None], expected[target], 0.0))
    assert not carbon_batches._on_host(types.SimpleNamespace(devices=lambda: [types.SimpleNamespace(platform="gpu")]))
    assert carbon_batches._on_host(jnp.zeros(2)) and jax.default_backend() == "cpu"
