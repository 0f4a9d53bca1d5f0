"""Synthetic snapshots shared by the data tests (built once per session)."""

import shutil

import pytest

from geno_lewm_jax.data import load_snapshot, make_synthetic_snapshot


@pytest.fixture(scope="session")
def default_snapshot_dir(tmp_path_factory):
    """The embedded default's snapshot: seed 0, default size, 4,096 bp windows."""
    return make_synthetic_snapshot(tmp_path_factory.mktemp("snap") / "default", seed=0)


@pytest.fixture(scope="session")
def default_snapshot(default_snapshot_dir):
    return load_snapshot(default_snapshot_dir)


@pytest.fixture(scope="session")
def small_snapshot_dir(tmp_path_factory):
    return make_synthetic_snapshot(tmp_path_factory.mktemp("snap") / "small", seed=3, n_windows=8, window_bp=1024)


@pytest.fixture
def small_copy(small_snapshot_dir, tmp_path):
    """A private copy of the small snapshot that a test may damage."""
    return shutil.copytree(small_snapshot_dir, tmp_path / "copy")
