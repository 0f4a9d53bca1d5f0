"""Process-level setup of the main job (``geno_lewm_jax.job``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def last_json_line_of(code: str):
    """Run ``code`` in a child process (the test session has its own cache settings); parse its last line."""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_compilation_cache_keeps_every_program(tmp_path):
    """The job caches small programs too, so a restart compiles none of them (and GPU autotuning is cached)."""
    code = f"""
import json, jax
from geno_lewm_jax.config import load_config
from geno_lewm_jax.job import use_compilation_cache
use_compilation_cache(load_config(overrides={{"runtime.compilation_cache_dir": {str(tmp_path / "xla")!r}}}))
f = jax.jit(lambda x: x * 2 + 1)
f(jax.numpy.ones(3)).block_until_ready()
print(json.dumps([jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs,
                  jax.config.jax_persistent_cache_enable_xla_caches]))
"""
    cache_dir, min_seconds, xla_caches = last_json_line_of(code)
    assert cache_dir == str(tmp_path / "xla") and min_seconds == 0.0
    assert xla_caches == "xla_gpu_per_fusion_autotune_cache_dir"  # GPU autotuning results are kept beside it
    assert any((tmp_path / "xla").iterdir())  # a program that compiles in milliseconds was written


def test_an_empty_cache_dir_leaves_the_cache_off(tmp_path):
    code = """
import json, jax
from geno_lewm_jax.config import load_config
from geno_lewm_jax.job import use_compilation_cache
use_compilation_cache(load_config(overrides={"runtime.compilation_cache_dir": ""}))
print(json.dumps(jax.config.jax_compilation_cache_dir))
"""
    assert last_json_line_of(code) is None
