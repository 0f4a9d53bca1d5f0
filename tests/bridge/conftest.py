"""Shared fixtures for the bridge tests: one stand-in Carbon directory per session, random windows."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory):
    from bridge import write_standin

    return write_standin(tmp_path_factory.mktemp("carbon") / "standin", seed=0)


def random_windows(rng: np.random.Generator, n: int, lo: int = 1, hi: int = 13000, n_rate: float = 0.3) -> list[str]:
    """Windows of random length; about ``n_rate`` of them hold some N, a few are lower case."""
    out = []
    for _ in range(n):
        length = int(rng.integers(lo, hi + 1))
        if rng.random() < 0.3:
            length = max(6, length - length % 6)
        seq = rng.choice(np.array(list("ACGT")), size=length)
        if rng.random() < n_rate:
            seq[rng.random(length) < rng.choice([0.001, 0.05, 0.5])] = "N"
        text = "".join(seq)
        out.append(text.lower() if rng.random() < 0.1 else text)
    return out


@pytest.fixture
def windows():
    return random_windows
