"""End to end: our main job against geno-lewm 0.2.1's ``run_carbon_training``, same inputs, same run.

Both train the same number of steps at the same batch size on the same
stand-in Carbon and synthetic snapshot, with the reference's predictor shape
(d_hidden = ffn = 768, 6 cross + 2 self blocks). Prints one JSON line per side
and one with the ratios:

* tuples/s: tuples trained per second over whole loop iterations after the first
  (Carbon encoding included on both sides);
* time to first step: from the training call to the end of the first
  optimizer step (our XLA compile included; the persistent compile cache is off);
* ours also reports its final validation's skill over the no-change baseline
  (``val_delta_r2``, ``val_cos_skill``; see ``geno_lewm_jax.training.skill``), on the
  compositional stand-in of the embedded default.

``--loop_overhead`` measures the loop alone instead: the tiny config with a warm
feature cache (no Carbon forward) and a warm compile cache, against the bare
jitted step replaying the same batches back to back, timed in the same run.
Two timed runs: one validating and checkpointing only at its last step, whose
progress windows after the last K bucket's first use give the steady-state
iteration (dispatch, producer hand-off, the log-cadence fetch and logging);
and one at the tiny config's own cadence (validation every 50 steps, a save
every 100), whose whole-run figure adds what that periodic work costs.

``--warm_cache`` adds a third line: our job twice more with a fresh persistent
compilation cache, reporting the second run (what every restart of the same
config sees, since the cache is on by default).

    python bench/e2e.py [--steps 60] [--batch_size 8] [--warm_cache]
    python bench/e2e.py --loop_overhead [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_ours(
    model_dir: Path, dataset_dir: Path, run_dir: Path, steps: int, batch: int, stream: str, cache_dir: str = ""
) -> dict:
    from geno_lewm_jax.flags import config_from_argv
    from geno_lewm_jax.job import use_compilation_cache
    from geno_lewm_jax.training.carbon import run_carbon_training

    config = config_from_argv([
        "bench", "--flagfile=configs/tiny.flags", "--d_hidden=768", "--ffn_dim=768", f"--max_steps={steps}",
        f"--batch_size={batch}", "--warmup_steps=2", f"--log_every_steps={steps}", f"--checkpoint_every_steps={steps}",
        f"--collapse_log_every_steps={steps}", f"--model_dir={model_dir}", f"--dataset_dir={dataset_dir}",
        f"--run_dir={run_dir}", f"--compilation_cache_dir={cache_dir}", f"--stream={stream}", "--nobootstrap_missing",
    ])
    use_compilation_cache(config)
    report = run_carbon_training(config)
    return {"side": "geno_lewm_jax", "stream": stream, "steps": steps, "batch_size": batch,
            "tuples_per_s": report.tuples_per_second, "first_step_s": report.first_step_seconds,
            "wall_s": report.wall_seconds, "val_delta_r2": report.val_delta_r2, "val_cos_skill": report.val_cos_skill}


def run_reference(
    model_dir: Path, dataset_dir: Path, run_dir: Path, steps: int, batch: int, overrides: dict | None = None
) -> dict:
    """``overrides``: whole top-level sections of the reference's config that replace these (bench/gpu.py's shapes)."""
    from geno_lewm.config.loader import load_config
    from geno_lewm.training import real
    from geno_lewm.training.trainer import TorchTrainer

    config = load_config({
        "seed": 0,
        "encoder": {"dtype": "fp32", "state_layer": 1, "pool_radius": 8},  # as configs/tiny.flags
        "predictor": {"d_state": 64},
        "training": {"max_steps": steps, "collapse_log_every_steps": steps},
        "optimizer": {"warmup_steps": 2},
        "data": {"batch_size": batch},
        "runtime": {"device": "cpu"},
        **(overrides or {}),
    })
    ends: list[float] = []
    original = TorchTrainer.train_step

    def timed(self, *args, **kwargs):  # records when each step ends; behaviour unchanged
        out = original(self, *args, **kwargs)
        ends.append(time.monotonic())
        return out

    TorchTrainer.train_step = timed
    try:
        started = time.monotonic()
        real.run_carbon_training(config=config, dataset_dir=dataset_dir, carbon_model_dir=model_dir, run_dir=run_dir,
                                 steps=steps, command="bench", commit_sha="0000000", package_version="0.2.1")
        wall = time.monotonic() - started
    finally:
        TorchTrainer.train_step = original
    tps = (len(ends) - 1) * batch / (ends[-1] - ends[0]) if len(ends) > 1 else None
    return {"side": "geno-lewm 0.2.1", "steps": steps, "batch_size": batch, "tuples_per_s": tps,
            "first_step_s": ends[0] - started, "wall_s": wall}


def _tiny_config(root: Path, run_dir: Path, steps: int, *extra: str):
    from geno_lewm_jax.flags import config_from_argv

    return config_from_argv([
        "bench", "--flagfile=configs/tiny.flags", f"--max_steps={steps}", f"--model_dir={root / 'carbon'}",
        f"--dataset_dir={root / 'snapshot'}", f"--run_dir={run_dir}", f"--feature_cache_dir={root / 'features'}",
        f"--compilation_cache_dir={root / 'xla-cache'}", "--nobootstrap_missing", *extra,
    ])


def _bare_step_seconds(config, steps: int) -> float:
    """Seconds per step of the jitted step alone, replaying the job's first ``steps`` batches (cache-warm)."""
    import jax
    from bridge import CarbonEncoder, FeatureCache, encode_with_cache

    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training.carbon_batches import encode_training_batch
    from geno_lewm_jax.training.trainer import Trainer, TrainerSeeds

    encoder = CarbonEncoder.from_config(config, device="cpu")
    cache = FeatureCache(config.encoder.feature_cache_dir)
    seeds = TrainerSeeds.from_base_seed(config.seed)
    trainer = Trainer(build_predictor(config, seed=seeds.predictor), build_action_encoder(config, seed=seeds.predictor + 1),
                      None, config, total_steps=config.training.max_steps)
    stream = TupleStream.from_config(load_snapshot(config.data.dataset_dir), config)
    batches = [
        trainer.prepare(encode_training_batch(
            encoder=encoder, tuples=tb.tuples, k=tb.k_bucket, max_window_bp=config.action.max_window_bp,
            encode_fn=lambda seqs, loci: encode_with_cache(encoder, cache, seqs, loci)))
        for tb in stream.take(steps)
    ]
    dispatch = getattr(trainer, "dispatch_step", trainer.train_step)  # older trainers fetch every step

    def replay() -> None:
        for step, batch in enumerate(batches, 1):
            out = dispatch(batch, step)
        jax.block_until_ready(getattr(out, "scalars", out))

    replay()  # compiles every bucket
    trainer.initialize(build_predictor(config, seed=seeds.predictor), build_action_encoder(config, seed=seeds.predictor + 1))
    start = time.perf_counter()
    replay()
    return (time.perf_counter() - start) / steps


def _progress(run_dir: Path) -> list[dict]:
    events = [json.loads(line) for line in (run_dir / "train.log").read_text().splitlines()]
    return [e for e in events if e["event"] == "train.progress"]


def _last_first_use(config, steps: int) -> int:
    """The step at which the run first meets the last of its K buckets (its program is loaded then)."""
    from geno_lewm_jax.data import TupleStream, load_snapshot

    stream = TupleStream.from_config(load_snapshot(config.data.dataset_dir), config)
    first: dict[int, int] = {}
    for step, batch in enumerate(stream.take(steps), 1):
        first.setdefault(batch.k_bucket, step)
    return max(first.values())


def _steady_iteration_seconds(progress: list[dict], after_step: int) -> float:
    """Seconds per iteration over the progress windows that start at or after ``after_step``,
    without the (final) validation and checkpoint."""
    windows = [(a["step"], b) for a, b in zip(progress, progress[1:]) if a["step"] >= after_step]
    busy = sum(b["time_wall"] - b["time_validation"] - b["time_checkpoint"] for _, b in windows)
    return busy / (windows[-1][1]["step"] - windows[0][0])


def loop_overhead(steps: int) -> dict:
    """The tiny job's steady-state iteration time against its bare step (see the module docstring)."""
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot
    from geno_lewm_jax.job import use_compilation_cache
    from geno_lewm_jax.training.carbon import run_carbon_training

    root = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    write_standin(root / "carbon", seed=0)
    make_synthetic_snapshot(root / "snapshot", seed=0)
    warmup = _tiny_config(root, root / "warmup", steps)
    use_compilation_cache(warmup)
    run_carbon_training(warmup)  # fills the feature cache and the compile cache
    only_at_end = (f"--collapse_log_every_steps={steps}", f"--checkpoint_every_steps={steps}")
    steady_run = run_carbon_training(_tiny_config(root, root / "steady", steps, *only_at_end))
    cadence_run = run_carbon_training(_tiny_config(root, root / "cadence", steps))
    bare_s = _bare_step_seconds(warmup, steps)
    after = _last_first_use(warmup, steps)
    steady_s = _steady_iteration_seconds(_progress(steady_run.run_dir), after)
    # every iteration but those loading a new K bucket's program, validations and checkpoints included
    cadence_s = warmup.data.batch_size / cadence_run.tuples_per_second
    return {
        "mode": "loop_overhead", "steps": steps, "bare_step_ms": bare_s * 1e3,
        "steady_iteration_ms": steady_s * 1e3, "ratio": steady_s / bare_s, "steady_from_step": after,
        "with_tiny_cadence_iteration_ms": cadence_s * 1e3, "with_tiny_cadence_ratio": cadence_s / bare_s,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--stream", default="kstep", choices=["kstep", "legacy"])
    parser.add_argument("--warm_cache", action="store_true", help="also time a start with a warm compile cache")
    parser.add_argument("--ours_only_in", default="", help=argparse.SUPPRESS)  # internal: one warm-cache run
    parser.add_argument("--loop_overhead", action="store_true", help="the loop against its bare step (no reference)")
    args = parser.parse_args()
    if args.loop_overhead:
        print(json.dumps(loop_overhead(args.steps)), flush=True)
        return
    if args.ours_only_in:
        root = Path(args.ours_only_in)
        run_dir = Path(tempfile.mkdtemp(dir=root)) / "run"
        cache = str(root / "xla-cache")
        print(json.dumps(run_ours(root / "carbon", root / "snapshot", run_dir, args.steps, args.batch_size, args.stream, cache)))
        return

    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot

    root = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    write_standin(root / "carbon", seed=0, embeddings="compositional")  # as the embedded default: skill is measurable
    make_synthetic_snapshot(root / "snapshot", seed=0)
    import torch

    threads = torch.get_num_threads()
    ours = run_ours(root / "carbon", root / "snapshot", root / "ours", args.steps, args.batch_size, args.stream)
    print(json.dumps(ours), flush=True)
    torch.set_num_threads(threads)  # our job gives Carbon half the cores; the reference gets torch's default
    ref = run_reference(root / "carbon", root / "snapshot", root / "ref", args.steps, args.batch_size)
    print(json.dumps(ref), flush=True)
    summary = {
        "ratio_tuples_per_s": ours["tuples_per_s"] / ref["tuples_per_s"],
        "ours_first_step_s": ours["first_step_s"],
        "reference_first_step_s": ref["first_step_s"],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    if args.warm_cache:  # fresh processes, so nothing compiled in this one is reused
        command = [sys.executable, __file__, f"--steps={args.steps}", f"--batch_size={args.batch_size}",
                   f"--stream={args.stream}", f"--ours_only_in={root}"]
        subprocess.run(command, check=True, capture_output=True)  # fills root/xla-cache
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        warm = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({**warm, "compile_cache": "warm"}), flush=True)
        summary["ours_first_step_s_warm_cache"] = warm["first_step_s"]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
