"""``bench/gpu.py``'s component measurements: the chip's matmul rate, the train step, Carbon.

Each function runs inside one worker process of ``bench/gpu.py`` and returns
JSON-able rows. Every timed device call is synchronised (``block_until_ready``,
a host fetch, or a torch call that returns Python floats).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gpu_sizes import Sizes
from timing import median_seconds


def bf16_matmul_tflops(n: int, repeats: int = 10) -> float:
    """Median TFLOP/s of one n x n x n bfloat16 ``jnp.dot`` (float32 accumulation) on the default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    dot = jax.jit(jnp.dot)
    return 2 * n**3 / median_seconds(lambda: dot(a, b).block_until_ready(), repeats, warmup=2) / 1e12


# --- the train step ----------------------------------------------------------------------------
_TOTAL_STEPS = 100_000  # the schedule's horizon: far beyond any step timed here


def _host_batch(sizes: Sizes, batch: int, k: int) -> tuple[Any, Any]:
    """The same random batch as our TrainerBatch (numpy) and the reference's TorchTrainerBatch (on its device)."""
    import torch
    from geno_lewm.training import TorchTrainerBatch
    from train_step import edit_rows

    from geno_lewm_jax.model import featurize_edits
    from geno_lewm_jax.training import TrainerBatch, make_action_mask

    rng = np.random.default_rng(0)
    d_state = sizes.reference_predictor["d_state"]
    rows = edit_rows(rng, batch, k)
    mask = make_action_mask(rows)
    state = rng.standard_normal((batch, d_state)).astype(np.float32)
    state /= np.linalg.norm(state, axis=-1, keepdims=True)
    targets = rng.standard_normal((batch, k, d_state)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=-1, keepdims=True)
    ours = TrainerBatch(state=state, targets=targets, features=featurize_edits(rows), action_mask=mask)
    ref = TorchTrainerBatch(
        state=torch.from_numpy(state).to(sizes.device), target=torch.from_numpy(targets).to(sizes.device), rel_edits=rows,
        action_mask=torch.from_numpy(mask).to(sizes.device), window_ids=("w",) * batch,
    )
    return ours, ref


def our_trainer(sizes: Sizes, compute_dtype: str, abstract: bool = False) -> Any:
    """The release predictor's Trainer (phase2 objective) at ``compute_dtype``, on every local device.

    ``abstract``: modules from their shapes only (``nnx.eval_shape``), enough to
    compile the step into the persistent cache without initialising anything.
    """
    from flax import nnx

    from geno_lewm_jax.config import load_config
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training import Trainer

    config = load_config(overrides={
        "training.max_steps": _TOTAL_STEPS, "phase": "phase2", "predictor.compute_dtype": compute_dtype, **sizes.step_overrides,
    })
    build = nnx.eval_shape if abstract else (lambda make: make())
    predictor = build(lambda: build_predictor(config, seed=1))
    action_encoder = build(lambda: build_action_encoder(config, seed=2))
    return Trainer(predictor, action_encoder, None, config, _TOTAL_STEPS)


def start_step_compiles(sizes: Sizes, batches: list[int], dtypes: list[str], k: int) -> list[tuple[Any, int, list[int]]]:
    """Start compiling every train-step case, one Trainer each so all of them compile at once.

    (One Trainer compiles its batch sizes one after another.) The step worker's
    ``train_step_rows`` builds the same programs and reads them from the cache.
    """
    started = []
    for b in batches:
        for d in dtypes:
            trainer = our_trainer(sizes, d, abstract=True)
            trainer.precompile(b, [k])
            started.append((trainer, b, [k]))
    return started


def _reference_trainer(sizes: Sizes) -> Any:
    """geno-lewm 0.2.1's TorchTrainer for the same predictor shape, on ``sizes.device``."""
    import torch
    from geno_lewm.action import ActionEncoder
    from geno_lewm.config import load_config
    from geno_lewm.predictor import build_predictor
    from geno_lewm.training import TorchTrainer, build_adamw_optimizer

    config = load_config({"phase": "phase2", "predictor": sizes.reference_predictor, "optimizer": {"warmup_steps": 1000}})
    torch.manual_seed(0)
    encoder = ActionEncoder(d_action=config.action.d_action).to(sizes.device)
    predictor = build_predictor(config).to(sizes.device)
    optimizer = build_adamw_optimizer(predictor=predictor, action_encoder=encoder, config=config)
    return TorchTrainer(predictor=predictor, action_encoder=encoder, optimizer=optimizer, config=config, total_steps=_TOTAL_STEPS)


def _our_step_seconds(trainer: Any, prepared: Any, repeats: int, counter: Iterator[int]) -> float:
    """Seconds per step of ``repeats`` steps dispatched back to back, scalars fetched once (as the loop does)."""

    def block(n: int) -> None:
        trainer.resolve_steps([trainer.dispatch_step(prepared, next(counter)) for _ in range(n)])

    block(3)  # settle: the compiled programs are loaded, the first transfers done
    start = time.perf_counter()
    block(repeats)
    return (time.perf_counter() - start) / repeats


def _reference_step_seconds(trainer: Any, batch: Any, sizes: Sizes, bf16: bool, repeats: int, counter: Iterator[int]) -> float:
    """Median seconds of one reference step; bf16 runs it under ``torch.autocast`` (the reference has no bf16 switch)."""
    import contextlib

    import torch

    autocast = torch.autocast(device_type=sizes.device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            trainer.train_step(batch, step=next(counter))  # returns Python floats: synchronised

    return median_seconds(step, repeats, warmup=2)


def train_step_rows(sizes: Sizes, batches: list[int], dtypes: list[str], k: int, repeats: int, ref_repeats: int) -> Iterator[dict]:
    """Ours against TorchTrainer per (batch, dtype): ms, XLA's FLOPs, TFLOP/s and the share of the bf16 matmul rate."""
    import itertools

    import jax
    import torch

    peak = bf16_matmul_tflops(sizes.matmul_n)
    yield {"section": "bf16_matmul", "n": sizes.matmul_n, "tflops": round(peak, 2), "device_kind": jax.devices()[0].device_kind}
    cases = [(b, d) for b in batches for d in dtypes]
    trainers = {d: our_trainer(sizes, d) for d in dtypes}
    for b, d in cases:  # read back from the persistent cache the compile worker filled, before anything is timed
        trainers[d].precompile(b, [k], wait=True)
    reference = _reference_trainer(sizes)
    ours_counter, ref_counter = itertools.count(1), itertools.count(1)
    for b, d in cases:
        host, ref_batch = _host_batch(sizes, b, k)
        trainer = trainers[d]
        ours_s = _our_step_seconds(trainer, trainer.prepare(host), repeats, ours_counter)
        ref_s = _reference_step_seconds(reference, ref_batch, sizes, d == "bfloat16", ref_repeats, ref_counter)
        flops = trainer.step_flops(host)
        yield {
            "section": "train_step", "batch": b, "k": k, "compute_dtype": d,
            "reference_compute": "torch.autocast(bfloat16)" if d == "bfloat16" else "float32",
            "ours_ms": round(ours_s * 1e3, 3), "reference_ms": round(ref_s * 1e3, 3), "ratio": round(ours_s / ref_s, 4),
            "step_gflop": round(flops / 1e9, 3), "ours_tflops": round(flops / ours_s / 1e12, 3),
            "reference_tflops": round(flops / ref_s / 1e12, 3), "bf16_matmul_tflops": round(peak, 2),
            "fraction_of_bf16_matmul": round(flops / ours_s / 1e12 / peak, 4), "torch_threads": torch.get_num_threads(),
        }


# --- Carbon ------------------------------------------------------------------------------------
def _sync_cuda(device: Any) -> None:
    import torch

    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize(device)


def carbon_bound_row(encoder: Any, config: Any, batches: int, warmup: int = 1) -> dict:
    """The Carbon forward alone over the job's own first ``warmup + batches`` batches.

    Each batch's distinct states go through ``CarbonEncoder.encode_batch_jax``
    exactly as the uncached job encodes them (``encode_training_batch``); only
    that call is timed (synchronised). The bound is the job's tuples/s if the
    step and everything else were free. A handful of batches gives the rate:
    every batch of the stream costs the same within a few percent (same
    window length, one state per tuple side).
    """
    import jax

    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.training.carbon_batches import encode_training_batch

    stream = TupleStream.from_config(load_snapshot(Path(config.data.dataset_dir)), config)
    seconds: list[float] = []
    states: list[int] = []

    def timed_encode(sequences: Any, loci: Any) -> Any:
        _sync_cuda(encoder.device)
        start = time.perf_counter()
        pooled = jax.block_until_ready(encoder.encode_batch_jax(sequences, loci))
        _sync_cuda(encoder.device)
        seconds.append(time.perf_counter() - start)
        states.append(len(sequences))
        return pooled

    for _ in range(warmup + batches):
        tb = stream.next_batch()
        encode_training_batch(encoder=encoder, tuples=tb.tuples, k=tb.k_bucket, max_window_bp=config.action.max_window_bp,
                              encode_fn=timed_encode)
    timed, n_states = sum(seconds[warmup:]), sum(states[warmup:])
    batch = config.data.batch_size
    return {
        "section": "carbon_bound", "batch": batch, "batches_timed": batches, "warmup_batches": warmup,
        "states_per_batch": round(n_states / max(1, batches), 1),
        "carbon_ms_per_batch_median": round(float(np.median(seconds[warmup:])) * 1e3, 2),
        "states_per_s": round(n_states / timed, 1), "bound_tuples_per_s": round(batch * batches / timed, 2),
        "encode_batch_size": config.encoder.encode_batch_size,
    }


def _windows(rng: np.random.Generator, n: int, bp: int) -> list[str]:
    return ["".join(rng.choice(np.array(list("ACGT")), size=bp)) for _ in range(n)]


def encoder_rows(ours: Any, config: Any, sizes: Sizes, window_bp: int, batches: list[int], repeats: int,
                 ref_repeats: int) -> Iterator[dict]:
    """``ours`` (the bound's CarbonEncoder) against the reference's CarbonStateEncoder: windows/s at ``window_bp``."""
    from geno_lewm.encoder.carbon import CarbonStateEncoder

    reference = CarbonStateEncoder(
        str(config.encoder.model_dir), "main", dtype=sizes.encoder["dtype"], state_layer=sizes.encoder["state_layer"],
        pool_radius=sizes.encoder["pool_radius"], device=sizes.device,
    )
    rng = np.random.default_rng(0)
    # CUDA context, kernels, allocator: one window, as each costs ~0.9 s in the reference's Python pooling
    reference.encode_batch(_windows(rng, 1, window_bp), [window_bp // 2])
    for b in batches:
        seqs = _windows(rng, b, window_bp)
        loci = [int(x) for x in rng.integers(0, window_bp, size=b)]
        ours_s = median_seconds(lambda: ours.encode_batch(seqs, loci), repeats, warmup=1)
        ref_s = median_seconds(lambda: reference.encode_batch(seqs, loci), ref_repeats, warmup=0)
        yield {
            "section": "encode", "window_bp": window_bp, "batch": b, "pooling": "centred", "contract": ours.contract,
            "ours_windows_per_s": round(b / ours_s, 2), "reference_windows_per_s": round(b / ref_s, 2),
            "ratio": round(ref_s / ours_s, 2), "ours_ms": round(ours_s * 1e3, 2), "reference_ms": round(ref_s * 1e3, 2),
        }
