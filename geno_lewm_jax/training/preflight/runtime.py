"""Default accelerator and dependency probes of the training preflight.

Accelerator: geno-lewm 0.2.1 only accepts ``runtime.device: cuda`` and asks
torch. Here the facts come from what JAX sees (``jax.local_devices()``: its
platform, count, ``device_kind`` and ``memory_stats()["bytes_limit"]``) and,
for ``cuda``, also from torch (``torch.cuda``), imported lazily inside the
probe so that importing this module never imports torch or jax. The decision
is the pure function :func:`decide_accelerator`:

* ``cpu``: always available (a CPU-only run is allowed); no memory minimum;
* ``auto``: available on whatever JAX's default backend is; no memory minimum;
* ``cuda``: needs a GPU seen by JAX, or else by torch, with at least the
  minimum memory. JAX's figure is preferred because the predictor trains
  there; note it is the allocator limit (a share of the card), not the total.
  Codes as in the reference: ``training.cuda.unavailable``,
  ``training.cuda.torch_unavailable`` (no JAX GPU and torch not importable),
  ``training.cuda.memory_unknown``, ``training.cuda.vram_too_low``;
* anything else (``mps``, or no device): unavailable with the new code
  ``training_config.runtime.device_unsupported`` (the reference's
  ``training_config.runtime.device_not_cuda`` no longer applies to cpu/auto).

The minimum is in GiB (as in the reference, despite the ``_gb`` names).

Dependencies: :data:`REQUIRED_TRAINING_MODULES` is the JAX training stack
plus the torch stack the Carbon bridge loads. Availability is decided with
``importlib.util.find_spec``; none of the names is a torch submodule, so the
probe does not import torch (the reference's ``safetensors.torch`` entry is
kept: finding it imports only ``safetensors``). Versions come from the
distribution that ships each import (``yaml`` is PyYAML, and so on).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass

from geno_lewm_jax.training.preflight.report import AcceleratorProbe, DependencyProbe

MIN_CUDA_VRAM_GB = 40.0
REQUIRED_TRAINING_MODULES = (
    # the JAX side: model, optimizer, checkpoints, flags and configs
    "jax",
    "flax.nnx",
    "optax",
    "orbax.checkpoint",
    "numpy",
    "absl.flags",
    "yaml",
    # the Carbon bridge and the snapshot reader
    "torch",
    "transformers",
    "safetensors.torch",
    "pyarrow",
    "pyarrow.parquet",
)
_DISTRIBUTION = {"absl": "absl-py", "yaml": "PyYAML", "orbax": "orbax-checkpoint"}
_GIB = 1024**3


def min_memory_bytes(min_gb: float) -> int:
    """GiB to bytes."""
    return int(float(min_gb) * _GIB)


# --- accelerator ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceView:
    """What one framework reports about this host's devices."""

    platform: str  # "gpu", "tpu" or "cpu"
    device_count: int
    device_name: str | None
    memory_bytes: int | None


def jax_view() -> DeviceView:
    """JAX's default backend on this process."""
    import jax

    devices = jax.local_devices()
    first = devices[0]
    memory = None
    try:
        stats = first.memory_stats()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        stats = None
    if stats and is_int(stats.get("bytes_limit")):
        memory = int(stats["bytes_limit"])
    return DeviceView(str(first.platform), len(devices), str(first.device_kind), memory)


def torch_view() -> DeviceView | None:
    """What torch.cuda reports, or None when torch cannot be imported."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_available():
        return DeviceView("cpu", 0, None, None)
    count = int(cuda.device_count())
    try:
        props = cuda.get_device_properties(0)
        return DeviceView("gpu", count, str(props.name), int(props.total_memory))
    except Exception:  # noqa: BLE001 - a driver error leaves the memory unknown
        return DeviceView("gpu", count, str(cuda.get_device_name(0)), None)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decide_accelerator(
    requested_device: str | None,
    required: bool,
    min_bytes: int,
    *,
    jax_seen: DeviceView | None,
    torch_seen: DeviceView | None,
) -> AcceleratorProbe:
    """The accelerator verdict from the two framework views (pure; see the module docstring)."""
    torch_cuda = None if torch_seen is None else torch_seen.platform == "gpu"

    def probe(available: bool, view: DeviceView | None, reason: str, code: str | None = None) -> AcceleratorProbe:
        return AcceleratorProbe(
            requested_device=requested_device,
            required=required,
            available=available,
            device_count=view.device_count if view else 0,
            device_name=view.device_name if view else None,
            total_memory_bytes=view.memory_bytes if view else None,
            min_memory_bytes=min_bytes,
            reason=reason,
            issue_code=code,
            platform=jax_seen.platform if jax_seen else None,
            torch_cuda_available=torch_cuda,
        )

    if requested_device == "cpu":
        return probe(True, jax_seen, "runtime.device is cpu: a CPU-only run is allowed")
    if requested_device == "auto":
        where = jax_seen.platform if jax_seen else "unknown"
        return probe(True, jax_seen, f"runtime.device is auto: the run uses JAX's default backend ({where})")
    if requested_device != "cuda":
        return probe(
            False,
            None,
            f"runtime.device {requested_device!r} is not supported by the JAX trainer; use cuda, cpu or auto",
            "training_config.runtime.device_unsupported",
        )
    if jax_seen is not None and jax_seen.platform == "gpu":
        gpu = jax_seen
        if gpu.memory_bytes is None and torch_seen is not None and torch_seen.platform == "gpu":
            gpu = DeviceView("gpu", gpu.device_count, gpu.device_name, torch_seen.memory_bytes)
    elif torch_seen is not None and torch_seen.platform == "gpu":
        gpu = torch_seen
    elif torch_seen is None:
        return probe(
            False,
            None,
            "JAX sees no GPU and torch cannot be imported to look for CUDA",
            "training.cuda.torch_unavailable",
        )
    else:
        return probe(False, None, "runtime.device is cuda but neither JAX nor torch sees a CUDA GPU", "training.cuda.unavailable")
    if gpu.memory_bytes is None:
        return probe(False, gpu, "the GPU's memory size could not be read", "training.cuda.memory_unknown")
    if gpu.memory_bytes < min_bytes:
        return probe(
            False,
            gpu,
            f"GPU memory {gpu.memory_bytes} bytes is below the required {min_bytes} bytes",
            "training.cuda.vram_too_low",
        )
    return probe(True, gpu, f"GPU {gpu.device_name} with {gpu.memory_bytes} bytes meets the requirement")


def probe_accelerator(requested_device: str | None, required: bool, min_bytes: int) -> AcceleratorProbe:
    """The default accelerator probe (torch is consulted only for ``cuda``)."""
    try:
        seen = jax_view()
    except Exception:  # noqa: BLE001 - a broken JAX install is reported, not raised
        seen = None
    other = torch_view() if requested_device == "cuda" else None
    return decide_accelerator(requested_device, required, min_bytes, jax_seen=seen, torch_seen=other)


# --- dependencies -----------------------------------------------------------------------------
def probe_dependency(import_name: str, required: bool) -> DependencyProbe:
    """The default dependency probe: is ``import_name`` findable, and which version ships it."""
    package = import_name.split(".", 1)[0]
    try:
        found = importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        found = False
    version = None
    if found:
        try:
            version = importlib.metadata.version(_DISTRIBUTION.get(package, package))
        except importlib.metadata.PackageNotFoundError:
            version = None
    return DependencyProbe(
        import_name=import_name,
        package=package,
        required=required,
        available=found,
        version=version,
        reason="importable" if found else f"{import_name} cannot be found on this Python path",
    )
