"""The Carbon bridge: the only package that imports torch.

Exports resolve lazily, so ``from bridge import FeatureCache`` (or the
tokenizer) does not pay for importing torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CarbonEncoder": "bridge.encoder",
    "FeatureBatch": "bridge.encoder",
    "FeatureCache": "bridge.cache",
    "CacheKey": "bridge.cache",
    "encode_with_cache": "bridge.cached",
    "CacheCounts": "bridge.cached",
    "write_standin": "bridge.standin",
    "tokenize": "bridge.tokenizer",
    "tokenize_batch": "bridge.tokenizer",
    "window_sha256": "bridge.tokenizer",
    "torch_to_jax": "bridge.dlpack",
    "inspect_model_dir": "bridge.loading",
    "CONTRACT_V2": "bridge.contracts",
    "CONTRACT_LEGACY": "bridge.contracts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
