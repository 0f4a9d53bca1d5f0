"""The Carbon model-directory probe of the training preflight.

Checks that the directory holds a local config, tokenizer and weights (the
reference's codes ``carbon.dir_missing``, ``carbon.config_missing``,
``carbon.tokenizer_missing``, ``carbon.weights_missing``) and reads the two
numbers the config must agree with, ``hidden_size`` and ``num_hidden_layers``
(``carbon.config_invalid`` when ``config.json`` does not provide them). The
weights are hashed once, or identified by size and mtime in ``"stat"`` mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geno_lewm_jax.training.preflight.report import FileHasher, IssueLog, is_positive_int, public_ref, stat_identity

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def inspect_carbon_model_dir(
    model_dir: Path, weights_identity: str, log: IssueLog, hasher: FileHasher
) -> dict[str, Any]:
    """The ``carbon`` section: local config, tokenizer and weights, plus the shape the config must match."""
    artifacts: dict[str, dict[str, object] | None] = {}
    section: dict[str, Any] = {
        "path": public_ref(model_dir),
        "local_files_only": True,
        "artifacts": artifacts,
        "hidden_size": None,
        "num_hidden_layers": None,
    }
    where = public_ref(model_dir)
    if not model_dir.is_dir():
        log.error("carbon.dir_missing", where, "carbon_model_dir is not a local model directory")
        return section
    artifacts.update(config=None, tokenizer=None, weights=None)
    config_file = model_dir / "config.json"
    if config_file.is_file():
        artifacts["config"] = hasher.identity(config_file, "config.json")
        section.update(_carbon_shape(config_file, f"{where}/config.json", log))
    else:
        log.error("carbon.config_missing", f"{where}/config.json", "the model directory has no config.json")
    tokenizer = _first_file(model_dir, TOKENIZER_FILES)
    if tokenizer is None:
        log.error("carbon.tokenizer_missing", where, "no tokenizer file: expected one of " + ", ".join(TOKENIZER_FILES))
    else:
        artifacts["tokenizer"] = hasher.identity(tokenizer, tokenizer.name)
    weights = _first_file(model_dir, WEIGHT_FILES)
    if weights is None:
        log.error("carbon.weights_missing", where, "no weights file: expected one of " + ", ".join(WEIGHT_FILES))
    elif weights_identity == "stat":
        artifacts["weights"] = stat_identity(weights, weights.name)
    else:
        artifacts["weights"] = hasher.identity(weights, weights.name)
    return section


def _carbon_shape(config_file: Path, where: str, log: IssueLog) -> dict[str, int | None]:
    """``hidden_size`` and ``num_hidden_layers`` from config.json (None where unreadable)."""
    try:
        payload = json.loads(config_file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.error("carbon.config_invalid", where, f"config.json is not valid JSON: {exc}")
        return {}
    if not isinstance(payload, dict):
        log.error("carbon.config_invalid", where, "config.json must hold a JSON object")
        return {}
    shape = {key: payload.get(key) for key in ("hidden_size", "num_hidden_layers")}
    bad = [key for key, value in shape.items() if not is_positive_int(value)]
    if bad:
        log.error("carbon.config_invalid", where, "config.json needs positive integer " + " and ".join(bad))
    return {key: value if key not in bad else None for key, value in shape.items()}


def _first_file(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_file()), None)
