"""Device layout over every device of every process: one ``('data',)`` mesh.

* The batch's leading axis is split over ``data``. In a multi-process run each
  process holds only its own rows (``B / process_count``, the data stream's
  host shard) and :func:`put_batch` assembles the global array from them.
* Parameters and optimizer state follow ``runtime.param_sharding``:
  ``replicated`` keeps a full copy on every device (pure data parallelism;
  XLA inserts the gradient all-reduce); ``fsdp`` splits each large leaf along
  one axis over ``data`` so that a device holds 1/N of the state, and XLA
  gathers the weights it needs inside the step. The jitted step is the same
  for both; only its in/out shardings differ.
* ``runtime.grad_reduction``: ``all_reduce`` (default) lets XLA sum the
  gradient, in an order that follows the device and process layout, so two
  layouts agree to ~1e-6, not bit for bit. ``ordered`` sums per-group
  gradients in a fixed order (:func:`ordered_sum`), so any device count of
  one process (two or more) that holds whole groups trains the same bits (the
  trainer's ``_ordered_value_and_grad`` says how, and where that stops).
* :func:`initialize_distributed` starts ``jax.distributed`` for multi-host
  runs, from explicit flags or from the cluster's own environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from geno_lewm_jax.errors import InputError, RuntimeSetupError

DATA_AXIS = "data"
PARAM_LAYOUTS = ("replicated", "fsdp")
# Leaves smaller than this stay replicated under FSDP: splitting a bias over 64
# devices saves nothing and adds a gather per use.
FSDP_MIN_ELEMENTS = 1024


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: all devices of all processes)."""
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


def check_param_layout(layout: str) -> str:
    if layout not in PARAM_LAYOUTS:
        raise InputError(
            f"runtime.param_sharding={layout!r} is not one of {list(PARAM_LAYOUTS)}",
            details={"field": "runtime.param_sharding", "value": layout},
        )
    return layout


def fsdp_spec(shape: Sequence[int], n_devices: int, *, min_elements: int = FSDP_MIN_ELEMENTS) -> PartitionSpec:
    """The FSDP placement of one leaf: its largest axis divisible by ``n_devices`` goes over ``data``.

    Small leaves, and leaves with no such axis, stay replicated (``PartitionSpec()``).
    """
    shape = tuple(int(d) for d in shape)
    if n_devices <= 1 or int(np.prod(shape, dtype=np.int64)) < min_elements:
        return PartitionSpec()
    candidates = [i for i, d in enumerate(shape) if d % n_devices == 0]
    if not candidates:
        return PartitionSpec()
    axis = max(candidates, key=lambda i: (shape[i], -i))  # largest; the first on a tie
    return PartitionSpec(*([None] * axis + [DATA_AXIS]))


def state_shardings(tree: Any, mesh: Mesh, layout: str = "replicated") -> Any:
    """A sharding for every leaf of ``tree`` (arrays or ShapeDtypeStructs) under ``layout``."""
    check_param_layout(layout)
    if layout == "replicated":
        rep = replicated(mesh)
        return jax.tree.map(lambda _: rep, tree)
    n = mesh.shape[DATA_AXIS]
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(np.shape(x), n)), tree)


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
    """The global batch on ``mesh`` from this process's rows (leading axis split over ``data``).

    Each process passes its own ``B / process_count`` rows; with one process
    that is the whole batch and this is a plain ``device_put``.
    """
    return jax.make_array_from_process_local_data(batch_sharding(mesh), tree)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def put_state(tree: Any, shardings: Any) -> Any:
    """Place a state pytree with its shardings, each leaf in its own buffer (the step donates them)."""
    return jax.device_put(tree, shardings, may_alias=False)


def fetch(tree: Any, mesh: Mesh) -> Any:
    """Host numpy copies of a pytree of (possibly sharded, possibly multi-process) arrays.

    When some leaf is split across processes it is first gathered to a
    replicated copy, a collective: every process must then call this together.
    """
    if any(isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated for x in jax.tree.leaves(tree)):
        tree = jax.jit(lambda t: t, out_shardings=replicated(mesh))(tree)
    return jax.device_get(tree)


# --- fixed-order gradient sums (runtime.grad_reduction = "ordered") ---------------------------------
GRAD_REDUCTIONS = ("all_reduce", "ordered")


def reduction_group_count(requested: int, mesh: Mesh) -> int:
    """The number of batch groups an ordered reduction sums: ``requested``, or one per device if 0.

    It must be a multiple of the device count, so that every device holds whole groups.
    """
    n = mesh.shape[DATA_AXIS]
    groups = n if requested == 0 else requested
    if groups < 1 or groups % n:
        raise InputError(
            f"runtime.reduction_groups={requested} is not a multiple of the {n} devices",
            details={"field": "runtime.reduction_groups", "value": requested, "devices": n},
            remediation=f"Use 0 (one group per device) or a multiple of {n}.",
        )
    return groups


def ordered_sum(stacked: jax.Array, axis_name: str) -> jax.Array:
    """Inside ``shard_map``: the sum over every device's groups, added in global group order.

    ``stacked`` [local groups, *shape] holds this device's per-group values;
    device d's groups come after device d-1's. XLA's all-reduce adds partial
    sums in an order that depends on the device and process layout, so the
    last bits of a gradient do too. Here every device gathers all groups'
    values (a copy) and adds them left to right, so the arithmetic is the same
    on any layout. The price: each device holds all G groups' values of a leaf
    at once, and the transfer is G / n times that of an all-reduce.
    """
    every = jax.lax.all_gather(stacked, axis_name, tiled=True)  # [all groups, *shape]
    total = every[0]
    for g in range(1, every.shape[0]):
        total = total + every[g]
    return total


# --- multi-host start-up ---------------------------------------------------------------------------
def _cluster_detected() -> str | None:
    """The cluster whose environment lets ``jax.distributed.initialize()`` find its peers by itself."""
    env = os.environ
    if int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1 and "SLURM_JOB_ID" in env:
        return "slurm"
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1 or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "tpu"
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return "openmpi"
    return None


def initialize_distributed(coordinator_address: str = "", num_processes: int = 1, process_id: int = 0) -> tuple[int, int]:
    """Join the run's processes with ``jax.distributed``; returns (process_index, process_count).

    Explicit settings (a coordinator address or more than one process) are
    passed through; otherwise, under SLURM, a multi-host TPU slice or Open MPI,
    ``jax.distributed.initialize()`` is called with no arguments so that JAX
    reads the cluster's environment. A single plain process starts nothing.
    Must run before anything touches a JAX device.
    """
    explicit = bool(coordinator_address) or num_processes > 1
    cluster = None if explicit else _cluster_detected()
    if not explicit and cluster is None:
        return process_id, num_processes  # one plain process: touch no device yet
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    # CPU devices (tests, CPU clusters) need a collectives backend across processes; GPUs/TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if explicit:
            jax.distributed.initialize(
                coordinator_address=coordinator_address or None,
                num_processes=num_processes,
                process_id=process_id,
            )
        else:
            jax.distributed.initialize()
    except (RuntimeError, ValueError) as exc:
        raise RuntimeSetupError(
            f"jax.distributed could not start ({' '.join(str(exc).split())[:400]})",
            details={
                "field": "runtime.coordinator_address",
                "coordinator_address": coordinator_address,
                "num_processes": num_processes,
                "process_id": process_id,
                "cluster": cluster,
            },
            remediation=(
                "Pass --coordinator_address=<host:port of process 0> with --num_processes and a distinct "
                "--process_id on every process, and start them before any other JAX work."
            ),
        ) from None
    if explicit and (jax.process_count() != num_processes or jax.process_index() != process_id):
        raise RuntimeSetupError(
            f"jax.distributed reports process {jax.process_index()} of {jax.process_count()}, "
            f"but the flags say {process_id} of {num_processes}",
            details={"field": "runtime.process_id", "process_id": process_id, "num_processes": num_processes},
        )
    return jax.process_index(), jax.process_count()


__all__ = [
    "DATA_AXIS",
    "FSDP_MIN_ELEMENTS",
    "GRAD_REDUCTIONS",
    "PARAM_LAYOUTS",
    "batch_sharding",
    "check_batch_divisible",
    "check_param_layout",
    "data_mesh",
    "fetch",
    "fsdp_spec",
    "initialize_distributed",
    "ordered_sum",
    "put_batch",
    "put_replicated",
    "put_state",
    "reduction_group_count",
    "replicated",
    "state_shardings",
]
