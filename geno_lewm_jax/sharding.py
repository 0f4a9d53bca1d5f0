"""Device layout: one ``('data',)`` mesh, batch split along it, everything else replicated.

Pure data parallelism: every device holds all parameters and optimizer state
and a contiguous slice of the batch's leading axis; XLA inserts the gradient
all-reduce. (The scale-out work adds FSDP and multi-host layouts here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from geno_lewm_jax.errors import InputError

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise InputError("a mesh needs at least one device", details={"field": "devices"})
    return Mesh(np.array(devs), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over ``data``; other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over the data axis."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise InputError(
            f"batch size {batch_size} does not split over {n} devices",
            details={"field": "data.batch_size", "value": batch_size, "devices": n},
            remediation=f"Use a data.batch_size that is a multiple of {n}.",
        )


def put_batch(tree: Any, mesh: Mesh) -> Any:
    """Place a batch pytree on ``mesh``, leading axis split over ``data``."""
    return jax.device_put(tree, batch_sharding(mesh))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "check_batch_divisible",
    "data_mesh",
    "put_batch",
    "put_replicated",
    "replicated",
]
