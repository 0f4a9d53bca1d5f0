"""``examples/library_use.py`` runs as written at tiny size: Trainer on cached features, then skill."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_library_example_trains_on_cached_features_and_reports_skill(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("library_use", REPO / "examples" / "library_use.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    tiny = ["--d_hidden=64", "--ffn_dim=64", "--n_heads=2", "--n_layers=2", "--n_self_layers=1", "--warmup_steps=2"]
    result = example.main([f"--work_dir={tmp_path}", "--steps=6", *tiny])
    out = capsys.readouterr().out
    assert "val_delta_r2" in out and "untrained" in out and "step 6" in out
    assert all(math.isfinite(v) for v in result.values())
    assert result["after"] != result["before"]  # six updates moved the predictions
    assert any((tmp_path / "feature-cache").iterdir())  # the states came through the cache
