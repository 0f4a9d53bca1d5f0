"""``bench/gpu.py``'s time plan: each section's seconds on one NVIDIA H200, computed from the counts it runs.

The rates are session 5's measurements on one H200 (jax 0.11.2 CUDA, torch
2.11 CUDA, the Carbon-500M-shaped stand-in: 24 layers, hidden 1024, bf16,
12,288-bp windows; BUILD.md, "The loop on accelerators"). What was not
measured one by one is marked *assumed*: the per-worker and per-job overheads
are sized so that the one section measured whole, ``carbon`` at 236 s, comes
out (``carbon_s`` of that session's counts gives 237 s). Every section's
``section_wall`` line shows what it really took; correct the constants from
those lines, not the counts.

Nothing here imports JAX or torch: ``bench/gpu.py`` checks the plan against
``--budget_s`` before it starts a single worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

# --- measured on one H200 (session 5) -----------------------------------------------------------
ENCODE_BATCH = 16  # encoder.encode_batch_size (the config default): states per Carbon forward
CARBON_FORWARD_S = 0.793 / 8  # a batch of 64 tuples (128 states, 8 forwards of 16) took 793 ms: 158 states/s
REFERENCE_ENCODE_S = 7.0 / 8  # CarbonStateEncoder: ~7 s per 8 windows (1.1 windows/s at batch 8 and 32)
STEP_MS = {  # train step, K = 1, (at B=64, at B=1024): ours, and TorchTrainer (bf16: under torch.autocast)
    ("ours", "float32"): (17.2, 68.7), ("ours", "bfloat16"): (8.7, 69.2),
    ("reference", "float32"): (45.7, 156.3), ("reference", "bfloat16"): (60.1, 197.3),
}
COMPILE_S = {1: 31.5, 4: 53.7}  # one gradient program compiled alone, per K bucket (issue 13's figures)
REFERENCE_FIRST_STEP_S = 23.0  # geno-lewm 0.2.1's main job at batch 8: its first step, from the call
REFERENCE_STEP_S = 11.0  # and each step after it

# --- assumed (not measured one by one) ------------------------------------------------------------
WORKER_S = 10.0  # a worker process: start, the jax/torch/geno-lewm imports, two CUDA contexts
CARBON_LOAD_S = 6.0  # building a CarbonEncoder or a CarbonStateEncoder (0.9 GB of weights, their sha256)
SNAPSHOT_S = 3.0  # the synthetic snapshot, written first (the compile workers wait for it)
STANDIN_S = 15.0  # writing the 0.9 GB stand-in after it
COMPILE_SHARE = 0.25  # each further program compiling at the same time adds a quarter of one (16 cores)
PROGRAM_LOAD_S = 2.0  # one step's programs read back from the persistent compilation cache
JOB_SETUP_S = 8.0  # a job beyond its steps: run dir, snapshot, initialisation, program loads, final checkpoint
STEP_SETUP_S = 5.0  # the train-step section's modules, the reference's TorchTrainer, the bf16 matmul
CACHED_TUPLES_PER_S = 5000.0  # a cached step at batch 256 (~28 ms by the step figures) is taken at the goal's rate
STATES_PER_TUPLE = {"legacy": 2.0, "kstep": 2.15}  # source + targets (kstep: K = 1/2/3 drawn 0.9/0.05/0.05)
STREAM_KS = {"legacy": (1,), "kstep": (1, 2, 3)}  # the K buckets one job compiles
REFERENCE_WARM_WINDOWS = 1  # CarbonStateEncoder's warm-up call before it is timed

ISSUE_MIN_TIMED_STEPS = 200  # issue 13 item 6: ours at batch 8 and 64, timed steps after the compiles
ISSUE_MIN_REFERENCE_STEPS = 5  # the reference's main job at batch 8


def _interpolate(batch: int, at_64: float, at_1024: float) -> float:
    """Linear in the batch through the two measured points (a step is overhead plus per-row work)."""
    return max(1.0, at_64 + (at_1024 - at_64) * (batch - 64) / (1024 - 64))


def step_ms(side: str, dtype: str, batch: int) -> float:
    return _interpolate(batch, *STEP_MS[(side, dtype)])


def compile_s(k: int) -> float:
    """One gradient program alone: linear in K through the K = 1 and K = 4 figures."""
    return COMPILE_S[1] + (COMPILE_S[4] - COMPILE_S[1]) * (k - 1) / 3


def compile_wall_s(ks: Sequence[int]) -> float:
    """Programs compiling at the same time: the longest, plus a share of each other one."""
    if not ks:
        return 0.0
    each = [compile_s(k) for k in ks]
    return max(each) + COMPILE_SHARE * (sum(each) - max(each))


def carbon_batch_s(batch: int, stream: str) -> float:
    """Carbon's forwards for one batch's states, ``ENCODE_BATCH`` to a forward (the bound's own arithmetic)."""
    return math.ceil(STATES_PER_TUPLE[stream] * batch / ENCODE_BATCH) * CARBON_FORWARD_S


def job_step_s(spec: Any) -> float:
    """Seconds per step of one of our jobs: Carbon-bound uncached, at the goal's rate cached."""
    step = step_ms("ours", spec.compute_dtype, spec.batch) / 1e3
    if spec.cached:
        return max(step, spec.batch / CACHED_TUPLES_PER_S)
    return max(step, carbon_batch_s(spec.batch, spec.stream))


def job_s(spec: Any) -> float:
    """A job's set-up, every step (warm-up window included) and, uncached, the batch still in Carbon at the end."""
    tail = 0.0 if spec.cached else carbon_batch_s(spec.batch, spec.stream)
    return JOB_SETUP_S + spec.max_steps * job_step_s(spec) + tail


def main_s(specs: Iterable[Any]) -> float:
    """A main worker: one Carbon load shared by its jobs, then the jobs one after another."""
    specs = list(specs)
    return WORKER_S + CARBON_LOAD_S + sum(job_s(s) for s in specs) if specs else 0.0


def prepare_s(programs: Sequence[int]) -> float:
    """Inputs and every compile, side by side: the compiles start once the snapshot is written."""
    inputs = WORKER_S + SNAPSHOT_S + STANDIN_S
    return max(inputs, WORKER_S + SNAPSHOT_S + compile_wall_s(programs)) if programs else inputs


def step_s(batches: Sequence[int], dtypes: Sequence[str], repeats: int, reference_repeats: int) -> float:
    """Program loads, then per case our steps (3 settling + repeats) and the reference's (2 warm-up + repeats)."""
    cases = [(b, d) for b in batches for d in dtypes]
    timed = sum((repeats + 3) * step_ms("ours", d, b) + (reference_repeats + 2) * step_ms("reference", d, b) for b, d in cases)
    return WORKER_S + STEP_SETUP_S + PROGRAM_LOAD_S * len(cases) + timed / 1e3


def carbon_s(bound_batch: int, bound_batches: int, stream: str, encode_batches: Sequence[int], repeats: int,
             reference_repeats: int, loads: int = 2) -> float:
    """Two encoder loads, the bound (one warm-up batch + the timed ones), then both encoders per batch size."""
    bound = (1 + bound_batches) * carbon_batch_s(bound_batch, stream)
    ours = sum((repeats + 1) * math.ceil(b / ENCODE_BATCH) * CARBON_FORWARD_S for b in encode_batches)
    reference = (REFERENCE_WARM_WINDOWS + reference_repeats * sum(encode_batches)) * REFERENCE_ENCODE_S
    return WORKER_S + loads * CARBON_LOAD_S + bound + ours + reference


def reference_s(steps: int) -> float:
    return WORKER_S + REFERENCE_FIRST_STEP_S + max(0, steps - 1) * REFERENCE_STEP_S


def job_programs(specs: Iterable[Any]) -> list[int]:
    """The K of every gradient program the jobs compile (the update programs are small and ride along)."""
    return [k for s in specs for k in STREAM_KS[s.stream]]
