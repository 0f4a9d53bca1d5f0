"""Test-session setup: 8 forced CPU devices (multi-device tests use them; others see device 0),
and one persistent XLA compilation cache for the session.

Many tests build fresh Trainers of the same shapes; each is a new jitted function, so
without the cache every one would pay XLA's CPU compile (5-15 s) again. The cache lives
in a temporary directory removed at the end of the session.
"""

import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CACHE_DIR = tempfile.mkdtemp(prefix="geno-lewm-jax-test-xla-")


def pytest_configure(config):
    import jax

    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


def pytest_collection_modifyitems(session, config, items):
    """End-to-end job tests first: with ``-n 2 --dist loadscope`` their long modules then run
    beside the rest of the suite instead of after it."""
    items.sort(key=lambda item: 0 if "/tests/job/" in str(item.path).replace("\\", "/") else 1)
