"""make_synthetic_snapshot: byte-identical per seed, CLI, overwrite rules."""

import subprocess
import sys
from pathlib import Path

import pytest

from geno_lewm_jax.data import load_snapshot, make_synthetic_snapshot
from geno_lewm_jax.errors import InputError


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_byte_identical_for_a_seed_and_across_processes(tmp_path):
    a = make_synthetic_snapshot(tmp_path / "a", seed=5, n_windows=16)
    b = make_synthetic_snapshot(tmp_path / "b", seed=5, n_windows=16)
    assert contents(a) == contents(b)
    run = subprocess.run(
        [sys.executable, "-m", "geno_lewm_jax.data.synthetic", f"--out={tmp_path / 'cli'}", "--seed=5", "--n_windows=16"],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "cli")
    assert contents(tmp_path / "cli") == contents(a)
    c = make_synthetic_snapshot(tmp_path / "c", seed=6, n_windows=16)
    assert contents(c)["placed/train-gnomad-common-windows.jsonl"] != contents(a)["placed/train-gnomad-common-windows.jsonl"]


def test_layout_and_sizes(tmp_path):
    root = make_synthetic_snapshot(tmp_path / "s", seed=1, n_windows=24, window_bp=2048)
    snap = load_snapshot(root)
    assert {f.path.split("/")[0] for f in snap.files} == {"placed", "carbon", "gnomad", "clinvar"}
    assert {r for f in snap.files for r in [f.role]} == {"train", "validation", "holdout", "eval"}
    assert all(len(w.sequence) == 2048 for w in snap.windows)
    assert sum(1 for w in snap.windows if w.role == "train" and w.chrom == "22") == 24
    for name in ("SHA256SUMS", "data_card.md", "split_integrity.json", "dataset_package.json",
                 "dataset_input_check_report.json", "dataset_snapshot_report.json"):
        assert (root / name).is_file()
    assert (root / "dataset_package.json").read_bytes() == (root / "dataset_manifest.json").read_bytes()


def test_overwrite_rules_and_bad_arguments(tmp_path):
    root = make_synthetic_snapshot(tmp_path / "s", seed=1, n_windows=4, window_bp=1024)
    again = make_synthetic_snapshot(root, seed=2, n_windows=4, window_bp=1024)  # replaces an earlier synthetic snapshot
    assert load_snapshot(again).snapshot_id.startswith("geno-lewm-jax-synthetic-s2")
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing"):
        make_synthetic_snapshot(keep)
    assert (keep / "notes.txt").read_text() == "mine"
    for kwargs in ({"seed": -1}, {"n_windows": 0}, {"window_bp": 1000}, {"n_windows": True}):
        with pytest.raises(InputError):
            make_synthetic_snapshot(tmp_path / "x", **kwargs)
    assert not list(tmp_path.glob(".x.*")) and not list(tmp_path.glob(".s.*"))


def test_cli_requires_out(tmp_path):
    run = subprocess.run([sys.executable, "-m", "geno_lewm_jax.data.synthetic"], capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "--out" in run.stderr
