"""Test-session setup: 8 forced CPU devices (multi-device tests use them; others see device 0)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
