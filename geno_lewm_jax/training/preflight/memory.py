"""The batch-memory probe of the training preflight: refuse a batch that cannot fit, before any work.

A batch lives in two places, and both grow linearly with ``data.batch_size``:

* on the host, the stream materialises every tuple of the batches in flight
  (the one training, the one being encoded and ``data.prefetch_batches`` more):
  a source window and up to ``action.max_len`` target windows each, as
  strings, plus their pooled Carbon states;
* on each device, the jitted step keeps the predictor's activations for the
  backward pass: per token and block about ``10 * d_hidden + 2 * ffn_dim``
  floats (LayerNorms, Q/K/V, attention output, residuals, the FFN's hidden
  layer), doubled for the backward pass's temporaries, for ``1 + K`` tokens per
  tuple (``K`` times that in causal mode, one view per step).

The window length comes from the snapshot manifest (bytes per record of its
window files, an upper bound on the sequence length), capped by
``action.max_window_bp``. On a CPU backend the devices share the host's RAM,
so everything is compared with the host's available memory; on a GPU/TPU the
step is compared with one device's memory. A batch estimated above what is
available is refused with ``training_config.data.batch_size_too_large``
naming ``data.batch_size``; the estimate errs low (it leaves out Carbon, the
parameters and XLA's own buffers), so a refused batch would certainly not fit.
Without the refusal, a batch of 10^8 tuples grows the host's memory
unboundedly inside the stream before anything is printed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from geno_lewm_jax import config as cfg
from geno_lewm_jax.training.preflight.report import AcceleratorProbe, IssueLog

STRING_OVERHEAD_BYTES = 64  # a CPython str header and its list slot
ACTIVATION_FACTOR = 2  # backward temporaries on top of the saved forward activations
FLOAT_BYTES = 4


@dataclass(frozen=True, slots=True)
class BatchMemoryEstimate:
    """Bytes a config's batches need: on the host (tuples and states in flight) and per device (the step)."""

    window_bp: int
    host_bytes: int
    step_bytes_per_device: int


def snapshot_window_bp(dataset_dir: Path, max_window_bp: int) -> int:
    """Longest window the snapshot can hold: bytes per record of its window files, capped by ``max_window_bp``."""
    try:
        manifest = json.loads((Path(dataset_dir) / "dataset_manifest.json").read_text(encoding="utf-8"))
        sizes = [
            int(entry["size_bytes"]) / int(entry["records"])
            for entry in manifest.get("files", [])
            if str(entry.get("path", "")).endswith(".jsonl") and int(entry.get("records") or 0) > 0
        ]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        sizes = []  # the dataset probe reports a broken manifest; assume the largest window
    return int(min(max_window_bp, math.ceil(max(sizes)))) if sizes else int(max_window_bp)


def estimate_batch_memory(config: cfg.Config, *, window_bp: int, devices: int) -> BatchMemoryEstimate:
    """The estimate for ``config`` on ``devices`` devices of this process (pure arithmetic)."""
    k = 1 if config.data.stream == "legacy" else config.action.max_len
    bucket = next((b for b in config.training.k_buckets if b >= k), k)
    per_process = math.ceil(config.data.batch_size / max(1, config.runtime.num_processes))
    in_flight = config.data.prefetch_batches + 2
    per_tuple_host = (1 + k) * (window_bp + STRING_OVERHEAD_BYTES + config.predictor.d_state * FLOAT_BYTES)
    host = in_flight * per_process * per_tuple_host
    p = config.predictor
    per_device = math.ceil(per_process / max(1, devices))
    tokens = per_device * (1 + bucket) * (bucket if p.causal else 1)
    blocks = p.n_layers + p.n_self_layers
    per_token = ACTIVATION_FACTOR * (10 * p.d_hidden + 2 * p.ffn_dim) * FLOAT_BYTES
    attention = ACTIVATION_FACTOR * per_device * (bucket if p.causal else 1) * p.n_heads * (1 + bucket) ** 2 * FLOAT_BYTES
    step = blocks * (tokens * per_token + attention)
    return BatchMemoryEstimate(window_bp=window_bp, host_bytes=int(host), step_bytes_per_device=int(step))


def available_host_bytes() -> int | None:
    """Memory the host can still give this process (``MemAvailable``), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def inspect_batch_memory(
    config: cfg.Config,
    dataset_dir: Path,
    accelerator: AcceleratorProbe,
    log: IssueLog,
    *,
    host_available: int | None = None,
) -> BatchMemoryEstimate:
    """Estimate the batch's memory and log an error naming ``data.batch_size`` when it cannot fit."""
    devices = max(1, accelerator.device_count)
    estimate = estimate_batch_memory(
        config, window_bp=snapshot_window_bp(dataset_dir, config.action.max_window_bp), devices=devices
    )
    host_available = available_host_bytes() if host_available is None else host_available
    on_host = accelerator.platform in (None, "cpu")
    host_need = estimate.host_bytes + (estimate.step_bytes_per_device * devices if on_host else 0)
    where = ""
    if host_available is not None and host_need > host_available:
        where = f"{_gib(host_need)} of host memory, {_gib(host_available)} available"
    device_memory = accelerator.total_memory_bytes
    if not where and not on_host and device_memory and estimate.step_bytes_per_device > device_memory:
        where = f"{_gib(estimate.step_bytes_per_device)} per device, {_gib(device_memory)} on {accelerator.device_name or 'the device'}"
    if where:
        log.error(
            "training_config.data.batch_size_too_large",
            "data.batch_size",
            f"data.batch_size={config.data.batch_size} needs at least {where} "
            f"(windows of {estimate.window_bp} bp, {config.action.max_len} steps per rollout); lower data.batch_size",
        )
    return estimate
