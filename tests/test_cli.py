"""The CLI contract: a bad flag or YAML value exits 2 with one line naming the field, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_main(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geno_lewm_jax.main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return f"--config_yaml={path}"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--d_state=abc"], "d_state"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["--phase=phase9"], "phase"),
        (["--d_hidden=100"], "predictor.d_hidden"),
        (["--lr=-1"], "optimizer.lr"),
        (["--batch_size=0"], "data.batch_size"),
        (["--max_steps=10"], "optimizer.warmup_steps"),
    ],
)
def test_bad_flag_exits_2_with_one_line(args, field):
    proc = run_main("--flagfile=configs/carbon.flags", *args)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("error[") and field in first
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "text, field",
    [
        ("seed: one\n", "seed"),
        ("predictor:\n  n_heads: true\n", "predictor.n_heads"),
        ("predictor:\n  unknown_knob: 3\n", "predictor.unknown_knob"),
        ("colour: red\n", "colour"),
        ("phase: phase7\n", "phase"),
        ("optimizer:\n  warmup_steps: -5\n", "optimizer.warmup_steps"),
    ],
)
def test_bad_yaml_exits_2_with_one_line(tmp_path, text, field):
    proc = run_main(_yaml(tmp_path, text))
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert field in first and "Traceback" not in proc.stderr


def test_missing_yaml_names_the_file(tmp_path):
    """A config file that does not exist is a caller error: exit 2, like every other config mistake."""
    proc = run_main(f"--config_yaml={tmp_path / 'nope.yaml'}")
    assert proc.returncode == 2 and "error[CONFIG.FILE_NOT_FOUND]" in proc.stderr and "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr
