"""Shared fixtures for the training-core tests (reference = geno-lewm 0.2.1)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the reference on one thread: on a shared 2-core machine, MKL/OpenMP spinning stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
