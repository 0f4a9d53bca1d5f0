"""Training-step speed against geno-lewm 0.2.1's ``TorchTrainer.train_step``, same run, same weights.

    /work/venv/bin/python bench/train_step.py [--repeats 15] [--steps 1,4] [--batch 64] [--threads N]

Release config (d_state 1024, A=64, 6 cross + 2 self blocks, phase2 objective),
batch 64, K=1 and K=4. Both trainers start from the same weights (copied
through geno_lewm_jax.interop) and see the same fixed batch; one timed call is
one full optimizer step including everything the caller waits for: ours
places the host batch on the device, runs the jitted step and fetches its
scalars; the reference runs its action encoder, forward, float64 KL, backward,
clip and AdamW. After warm-up (which includes our compile) the two sides are
timed in alternating blocks of steps. Each case prints one JSON line with both medians (ms),
``ratio`` = ours / reference (goal <= 0.5), our step's FLOPs (XLA cost
analysis), the achieved GFLOP/s and its fraction of this machine's measured
float32 matmul rate (a 2048^3 jnp.dot, measured once at start). The script
runs OpenBLAS (used by jaxlib's LAPACK kernels) on one thread unless
OPENBLAS_NUM_THREADS says otherwise; see the comment below. ``--threads N``
pins the whole process to N cores and gives torch N threads, so both sides
compute on the same N cores (on a shared machine, 1 is the steadiest figure:
torch's spinning OpenMP threads make its 2-thread timings erratic).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flops import step_flops  # noqa: E402
from timing import median_seconds  # noqa: E402
# jaxlib's LAPACK kernels (the KL's SVD) run on scipy's OpenBLAS, whose spinning worker threads
# stall when they compete with XLA's own threads on a small shared CPU; one OpenBLAS thread avoids
# that. torch uses MKL and is not affected. Set before numpy/scipy load; an explicit value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Median float32 GFLOP/s of an n x n x n jitted jnp.dot on the default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    return 2 * n**3 / median_seconds(lambda: dot(a, a).block_until_ready(), repeats, warmup=1) / 1e9


def block_medians(ours, reference, repeats: int, rounds: int = 3) -> tuple[float, float]:
    """Median ms per call of each side, timed in alternating blocks of calls after warm-up.

    Blocks, not call-by-call interleaving: torch's OpenMP workers and XLA's
    threads both keep spinning for a while after their own work, so alternating
    single calls makes each side pay for the other on a 2-core machine.
    """
    ours()
    reference()
    times: tuple[list[float], list[float]] = ([], [])
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):
        for fn, sink in ((reference, times[1]), (ours, times[0])):
            fn()  # settle this side's thread pool
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                sink.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def edit_rows(rng: np.random.Generator, batch: int, steps: int):
    from geno_lewm.action import EditType, RelEdit

    rows = []
    for _ in range(batch):
        row = []
        for _ in range(steps):
            ref, alt = rng.choice(list("ACGT"), size=2, replace=False)
            row.append(RelEdit(rel_pos=int(rng.integers(0, 12_000)), edit_type=EditType.SNV, ref_bases=ref, alt_bases=alt))
        rows.append(tuple(row))
    return tuple(rows)


def run_case(steps: int, batch: int, repeats: int, matmul_rate: float) -> dict:
    import jax
    import torch
    from geno_lewm.action import ActionEncoder as RefActionEncoder
    from geno_lewm.config import load_config as ref_load_config
    from geno_lewm.predictor import build_predictor as ref_build_predictor
    from geno_lewm.training import TorchTrainer, TorchTrainerBatch
    from geno_lewm.training import build_adamw_optimizer as ref_build_adamw

    from geno_lewm_jax.config import load_config
    from geno_lewm_jax.interop import from_reference_state_dict
    from geno_lewm_jax.model import build_action_encoder, build_predictor, featurize_edits
    from geno_lewm_jax.sharding import data_mesh
    from geno_lewm_jax.training import Trainer, TrainerBatch, make_action_mask

    total = 10_000
    config = load_config(overrides={"training.max_steps": total, "phase": "phase2"})
    ref_config = ref_load_config(
        {"phase": "phase2", "predictor": {"d_state": 1024, "n_layers": 6}, "optimizer": {"warmup_steps": 1000}}
    )
    torch.manual_seed(0)
    ref_encoder = RefActionEncoder(d_action=ref_config.action.d_action)
    ref_predictor = ref_build_predictor(ref_config)
    ref_trainer = TorchTrainer(
        predictor=ref_predictor,
        action_encoder=ref_encoder,
        optimizer=ref_build_adamw(predictor=ref_predictor, action_encoder=ref_encoder, config=ref_config),
        config=ref_config,
        total_steps=total,
    )
    predictor, encoder = build_predictor(config, seed=1), build_action_encoder(config, seed=1)
    for ours, ref in ((predictor, ref_predictor), (encoder, ref_encoder)):
        from_reference_state_dict(ours, {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    trainer = Trainer(predictor, encoder, None, config, total, mesh=data_mesh(jax.devices()[:1]))

    rng = np.random.default_rng(0)
    rows = edit_rows(rng, batch, steps)
    mask = make_action_mask(rows)
    state = rng.standard_normal((batch, 1024)).astype(np.float32)
    state /= np.linalg.norm(state, axis=-1, keepdims=True)
    targets = rng.standard_normal((batch, steps, 1024)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=-1, keepdims=True)
    ours_batch = TrainerBatch(state=state, targets=targets, features=featurize_edits(rows), action_mask=mask)
    ref_batch = TorchTrainerBatch(
        state=torch.from_numpy(state),
        target=torch.from_numpy(targets),
        rel_edits=rows,
        action_mask=torch.from_numpy(mask),
        window_ids=("w",) * batch,
    )
    counters = {"ours": 0, "ref": 0}

    def ours_step() -> None:
        counters["ours"] += 1
        trainer.train_step(ours_batch, counters["ours"])

    def ref_step() -> None:
        counters["ref"] += 1
        ref_trainer.train_step(ref_batch, step=counters["ref"])

    ours_ms, ref_ms = block_medians(ours_step, ref_step, repeats)
    flops = step_flops(config, ours_batch, mesh=trainer.mesh)
    achieved = flops / (ours_ms / 1000) / 1e9
    return {
        "case": "train_step",
        "batch": batch,
        "k": steps,
        "d_state": 1024,
        "ours_median_ms": round(ours_ms, 2),
        "reference_median_ms": round(ref_ms, 2),
        "ratio": round(ours_ms / ref_ms, 3),
        "step_gflop": round(flops / 1e9, 2),
        "achieved_gflops": round(achieved, 1),
        "matmul_gflops": round(matmul_rate, 1),
        "fraction_of_matmul_rate": round(achieved / matmul_rate, 3),
        "torch_threads": torch.get_num_threads(),
        "cores": len(os.sched_getaffinity(0)),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", default="1,4", help="comma-separated K values")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="cores for the whole process (0: all)")
    args = parser.parse_args()
    if args.threads:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
        import torch

        torch.set_num_threads(args.threads)
    rate = matmul_gflops()
    for k in (int(s) for s in args.steps.split(",")):
        print(json.dumps(run_case(k, args.batch, args.repeats, rate)), flush=True)


if __name__ == "__main__":
    main()
