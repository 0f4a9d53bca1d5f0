"""Data-parallel scaling of the jitted train step over 1, 2, 4 and 8 devices.

On CPU the devices are forced host devices (``--xla_force_host_platform_device_count``),
so this simulates a multi-device node on the same cores: it checks that the
sharded step runs and what the layout costs, not real speed-up. Each device
count runs in its own subprocess (XLA reads the flag once per process). The
global batch is fixed (strong scaling), so the per-device batch shrinks as
devices are added. The reference (geno-lewm 0.2.1, torch, one CPU device) runs
the same global batch in the same invocation; ``ratio`` = ours / reference.

    python bench/scaling.py                     # CPU simulation, JSON lines
    python bench/scaling.py --accelerator --peak_tflops=989   # on a GPU node: release config, bf16, MFU
    python bench/scaling.py --grad_reduction=ordered           # the fixed-order gradient sum's cost

``--accelerator`` uses the real devices of the machine (no forcing), the
release config with ``--compute_dtype=bfloat16`` and reports model FLOPs
utilisation from XLA's cost analysis of the compiled step against
``--peak_tflops`` per device (H100 SXM dense bf16: 989).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from timing import median_seconds

K = 4


def our_case(
    batch: int, repeats: int, n_layers: int, compute_dtype: str, layout: str, reduction: str, peak_tflops: float | None
) -> dict:
    import jax
    import numpy as np

    from flops import step_flops
    from train_step import edit_rows

    from geno_lewm_jax.config import load_config
    from geno_lewm_jax.model import build_action_encoder, build_predictor, featurize_edits
    from geno_lewm_jax.sharding import data_mesh
    from geno_lewm_jax.training import Trainer, TrainerBatch, make_action_mask

    total = 10_000
    overrides = {
        "training.max_steps": total,
        "predictor.compute_dtype": compute_dtype,
        "runtime.param_sharding": layout,
        "runtime.grad_reduction": reduction,
    }
    if n_layers:
        overrides["predictor.n_layers"] = n_layers
    config = load_config(overrides=overrides)
    d_state = config.predictor.d_state
    mesh = data_mesh()
    trainer = Trainer(build_predictor(config, seed=1), build_action_encoder(config, seed=2), None, config, total, mesh=mesh)
    rng = np.random.default_rng(0)
    rows = edit_rows(rng, batch, K)
    state = rng.standard_normal((batch, d_state)).astype(np.float32)
    targets = rng.standard_normal((batch, K, d_state)).astype(np.float32)
    host = TrainerBatch(state=state, targets=targets, features=featurize_edits(rows), action_mask=make_action_mask(rows))
    prepared = trainer.prepare(host)  # on the mesh beforehand: time the step, not the transfer
    counter = {"step": 0}

    def step() -> None:
        counter["step"] += 1
        trainer.train_step(prepared, counter["step"])  # returns after fetching the loss: synchronous

    seconds = median_seconds(step, repeats)
    flops = step_flops(config, host, mesh=mesh)  # per device for an SPMD program
    n = mesh.devices.size
    out = {
        "devices": n,
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "param_sharding": layout,
        "grad_reduction": reduction,
        "compute_dtype": compute_dtype,
        "global_batch": batch,
        "per_device_batch": batch // n,
        "k": K,
        "d_state": d_state,
        "n_layers": config.predictor.n_layers,
        "ours_step_ms": round(seconds * 1000, 2),
        "ours_tuples_per_s": round(batch / seconds, 1),
        "step_gflop_per_device": round(flops / 1e9, 3),
    }
    if peak_tflops:
        out["mfu"] = round(flops / seconds / (peak_tflops * 1e12), 4)
    return out


def reference_case(batch: int, repeats: int, n_layers: int) -> dict:
    import numpy as np
    import torch
    from geno_lewm.action import ActionEncoder as RefActionEncoder
    from geno_lewm.config import load_config as ref_load_config
    from geno_lewm.predictor import build_predictor as ref_build_predictor
    from geno_lewm.training import TorchTrainer, TorchTrainerBatch
    from geno_lewm.training import build_adamw_optimizer as ref_build_adamw

    from flops import step_flops
    from train_step import edit_rows

    from geno_lewm_jax.config import load_config

    total = 10_000
    d_state = load_config().predictor.d_state
    ref_config = ref_load_config(
        {"phase": "phase2", "predictor": {"d_state": d_state, "n_layers": n_layers}, "optimizer": {"warmup_steps": 1000}}
    )
    torch.manual_seed(0)
    encoder = RefActionEncoder(d_action=ref_config.action.d_action)
    predictor = ref_build_predictor(ref_config)
    trainer = TorchTrainer(
        predictor=predictor,
        action_encoder=encoder,
        optimizer=ref_build_adamw(predictor=predictor, action_encoder=encoder, config=ref_config),
        config=ref_config,
        total_steps=total,
    )
    rng = np.random.default_rng(0)
    rows = edit_rows(rng, batch, K)
    mask = np.ones((batch, K), dtype=bool)
    ref_batch = TorchTrainerBatch(
        state=torch.from_numpy(rng.standard_normal((batch, d_state)).astype(np.float32)),
        target=torch.from_numpy(rng.standard_normal((batch, K, d_state)).astype(np.float32)),
        rel_edits=rows,
        action_mask=torch.from_numpy(mask),
        window_ids=("w",) * batch,
    )
    counter = {"step": 0}

    def step() -> None:
        counter["step"] += 1
        trainer.train_step(ref_batch, step=counter["step"])

    seconds = median_seconds(step, repeats)
    return {"reference_step_ms": round(seconds * 1000, 2), "reference_tuples_per_s": round(batch / seconds, 1), "torch_threads": torch.get_num_threads()}


def run_worker(n_devices: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}", "JAX_PLATFORMS": "cpu"}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"--batch={args.batch}",
        f"--repeats={args.repeats}",
        f"--n_layers={args.n_layers}",
        f"--param_sharding={args.param_sharding}",
        f"--grad_reduction={args.grad_reduction}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{n_devices}-device worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1,2,4,8", help="comma-separated forced CPU device counts")
    parser.add_argument("--batch", type=int, default=32, help="global batch (tuples per step)")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--n_layers", type=int, default=2, help="predictor cross layers (0 = the release config's)")
    parser.add_argument("--param_sharding", default="replicated", choices=["replicated", "fsdp"])
    parser.add_argument("--grad_reduction", default="all_reduce", choices=["all_reduce", "ordered"])
    parser.add_argument("--accelerator", action="store_true", help="real devices, release config, bf16, MFU")
    parser.add_argument("--peak_tflops", type=float, default=989.0, help="per-device peak for MFU (H100 SXM bf16 dense)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(our_case(args.batch, args.repeats, args.n_layers, "float32", args.param_sharding, args.grad_reduction, None)), flush=True)
        return
    if args.accelerator:
        row = our_case(
            args.batch, args.repeats, args.n_layers, "bfloat16", args.param_sharding, args.grad_reduction, args.peak_tflops
        )
        print(json.dumps({"case": "accelerator", **row, "host": platform.node()}), flush=True)
        return
    reference = reference_case(args.batch, args.repeats, args.n_layers)
    for n in (int(s) for s in args.devices.split(",")):
        row = run_worker(n, args)
        print(
            json.dumps(
                {
                    "case": f"cpu_forced_{n}",
                    **row,
                    **reference,
                    "ratio": round(row["ours_step_ms"] / reference["reference_step_ms"], 3),
                    "machine": f"{platform.machine()} {os.cpu_count()} cores",
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
