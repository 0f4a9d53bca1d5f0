"""An 8-variant sweep in one vmapped step against 8 sequential single runs, at the release predictor size.

    python bench/sweep.py [--variants 8] [--steps 10] [--batch_size 8] [--predictor release|small]

Predictor: configs/carbon.flags' shape (6 cross + 2 self blocks, d_hidden = ffn =
768, 8 heads, d_action 64) on the tiny stand-in Carbon's d_state = 64; a seed
sweep (``--sweep=seed:0,...,V-1``). The data: the synthetic snapshot's legacy
stream (K = 1, one compiled bucket), encoded through a pooled-feature cache that
a first pass fills (warm: no Carbon forward in the timed passes).

Each run is what the main job's loop does per step: read the batch's states from
the feature cache, place it on the device, dispatch the step; scalars are
fetched once at the end. The V single runs share one compiled Trainer (each is
re-initialised from its own seed); the sweep reads each batch once for all
variants. Compiles are left out of the steady-state figure (each side runs its
steps once before timing) and reported on their own (single runs of one config
compile once: the persistent compilation cache serves the others).

Prints one JSON line: tuples/s counted per variant (a batch of B tuples trains
B x V variant-tuples in a sweep), the steady-state speedup (goal >= 3x on the
2-core CPU, >= 6x on a GPU), compile seconds, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench/train_step.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "release": ("--n_layers=6", "--n_self_layers=2", "--d_hidden=768", "--ffn_dim=768", "--n_heads=8", "--d_action=64"),
    "small": ("--n_layers=2", "--n_self_layers=1", "--d_hidden=64", "--ffn_dim=64", "--n_heads=2", "--d_action=16"),
}


def make_config(root: Path, shape: str, variants: int, steps: int, batch: int, sweep: bool):
    from geno_lewm_jax.flags import config_from_argv

    seeds = ",".join(str(s) for s in range(variants))
    return config_from_argv([
        "bench", "--flagfile=configs/tiny.flags", *SHAPES[shape], f"--max_steps={steps}", "--warmup_steps=2",
        f"--batch_size={batch}", "--stream=legacy", f"--model_dir={root / 'carbon'}", f"--dataset_dir={root / 'snapshot'}",
        f"--feature_cache_dir={root / 'features'}", "--nobootstrap_missing", *([f"--sweep=seed:{seeds}"] if sweep else []),
    ])


def batch_reader(config, steps: int):
    """A function that reads step i's batch through the warm feature cache (filled here)."""
    from bridge import CarbonEncoder, FeatureCache, encode_with_cache

    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.training.carbon_batches import encode_training_batch

    encoder = CarbonEncoder.from_config(config, device="cpu")
    cache = FeatureCache(config.encoder.feature_cache_dir)
    tuples = [(tb.tuples, tb.k_bucket) for tb in TupleStream.from_config(load_snapshot(config.data.dataset_dir), config).take(steps)]

    def read(i: int):
        rows, k = tuples[i]
        return encode_training_batch(
            encoder=encoder, tuples=rows, k=k, max_window_bp=config.action.max_window_bp,
            encode_fn=lambda seqs, loci: encode_with_cache(encoder, cache, seqs, loci),
        )

    for i in range(steps):
        read(i)  # fills the cache
    return read


def run_steps(trainer, read, steps: int) -> float:
    """Seconds for ``steps`` loop iterations (read, place, dispatch), scalars fetched at the end."""
    start = time.perf_counter()
    pending = [trainer.dispatch_step(trainer.prepare(read(i)), i + 1) for i in range(steps)]
    trainer.resolve_steps(pending)
    return time.perf_counter() - start


def modules(config, seed: int):
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training.trainer import TrainerSeeds

    s = TrainerSeeds.from_base_seed(seed).predictor
    return build_predictor(config, seed=s), build_action_encoder(config, seed=s + 1)


def compiled(trainer, batch: int) -> float:
    start = time.perf_counter()
    trainer.precompile(batch, [1], wait=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--predictor", default="release", choices=sorted(SHAPES), help="small: a quick check of the script")
    args = parser.parse_args()

    import jax
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot
    from geno_lewm_jax.sweep.trainer import SweepTrainer
    from geno_lewm_jax.training.trainer import Trainer

    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    write_standin(root / "carbon", seed=0)
    make_synthetic_snapshot(root / "snapshot", seed=0)
    v, steps, batch = args.variants, args.steps, args.batch_size
    single_config = make_config(root, args.predictor, v, steps, batch, sweep=False)
    sweep_config = make_config(root, args.predictor, v, steps, batch, sweep=True)
    read = batch_reader(single_config, steps)

    single = Trainer(*modules(single_config, 0), None, single_config, steps)
    single_compile = compiled(single, batch)
    run_steps(single, read, steps)  # warm-up (first-call overheads)
    single_seconds = 0.0
    for seed in range(v):
        single.initialize(*modules(single_config, seed))
        single_seconds += run_steps(single, read, steps)
    del single

    variant_modules = [modules(sweep_config, seed) for seed in range(v)]
    sweep = SweepTrainer(*variant_modules[0], sweep_config, steps)
    sweep_compile = compiled(sweep, batch)
    run_steps(sweep, read, steps)  # warm-up
    sweep.initialize([p for p, _ in variant_modules], [e for _, e in variant_modules])
    sweep_seconds = run_steps(sweep, read, steps)

    variant_tuples = v * steps * batch
    print(json.dumps({
        "variants": v, "steps": steps, "batch_size": batch, "k": 1, "predictor": f"{args.predictor} shape, d_state 64",
        "sequential_tuples_per_s": variant_tuples / single_seconds,
        "sweep_tuples_per_s": variant_tuples / sweep_seconds,
        "speedup": single_seconds / sweep_seconds,
        "single_step_ms": single_seconds / (v * steps) * 1e3, "sweep_step_ms": sweep_seconds / steps * 1e3,
        "single_compile_s": single_compile, "sweep_compile_s": sweep_compile,
        "devices": f"{jax.device_count()} {jax.devices()[0].platform}",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load_average": os.getloadavg()[0],
    }), flush=True)


if __name__ == "__main__":
    main()
