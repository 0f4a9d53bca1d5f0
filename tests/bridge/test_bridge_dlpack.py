"""torch -> JAX hand-off: same buffer (no copy) for float32 and bfloat16."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import bridge.encoder as encoder_module
from bridge import CarbonEncoder
from bridge.dlpack import torch_to_jax


@pytest.mark.parametrize("dtype,jdtype", [(torch.float32, jnp.float32), (torch.bfloat16, jnp.bfloat16)])
def test_zero_copy_shares_the_buffer(dtype, jdtype):
    tensor = torch.randn(8, 64, dtype=torch.float32).to(dtype)
    arr = torch_to_jax(tensor)
    assert isinstance(arr, jax.Array) and arr.dtype == jdtype and arr.shape == (8, 64)
    assert arr.unsafe_buffer_pointer() == tensor.data_ptr()
    np.testing.assert_array_equal(np.asarray(arr.astype(jnp.float32)), tensor.float().numpy())
    # Aliasing made visible (never do this outside a test: JAX assumes immutability).
    tensor[0, 0] = 123.0
    assert float(arr[0, 0]) == 123.0


def test_views_and_grad_tensors_are_made_compact():
    base = torch.randn(4, 10, 64, requires_grad=True)
    view = base[:, 1:-1, :]
    arr = torch_to_jax(view)
    np.testing.assert_array_equal(np.asarray(arr), view.detach().numpy())


def test_64_bit_tensors_are_refused():
    with pytest.raises(TypeError, match="float32"):
        torch_to_jax(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_encode_batch_jax_hands_over_the_pooled_buffer(standin_dir, monkeypatch, dtype):
    seen = []

    def spy(tensor):
        arr = torch_to_jax(tensor)
        seen.append((tensor.data_ptr(), arr.unsafe_buffer_pointer()))
        return arr

    monkeypatch.setattr(encoder_module, "torch_to_jax", spy)
    enc = CarbonEncoder(standin_dir, dtype=dtype, state_layer=2)
    seqs, loci = ["ACGT" * 400, "GATTACA" * 30, "N" * 6 + "ACG" * 50], [None, 100, 10]
    arr = enc.encode_batch_jax(seqs, loci)
    assert isinstance(arr, jax.Array) and arr.dtype == jnp.float32 and arr.shape == (3, 64)
    assert seen and seen[0][0] == seen[0][1] == arr.unsafe_buffer_pointer()
    np.testing.assert_array_equal(np.asarray(arr), enc.encode_batch(seqs, loci))
    assert float(jnp.linalg.norm(arr, axis=1).min()) > 0.999
