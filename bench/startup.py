"""Start-up cost: a job's time to its first step (cold and warm cache) and the release step's compiles.

    python bench/startup.py [--buckets 1,2,3,4,8,16] [--batch 8] [--flag=--noscan_layers] [--time_steps N]
                            [--skip_job] [--skip_compile]
    python bench/startup.py --device=cuda --job=release --buckets 1,2,3    # issue 14's GPU rows

Prints JSON lines:

* ``{"case": "tiny_job"|"release_job", "cache": "cold"|"warm", ...}``: ``python -m
  geno_lewm_jax.main --max_steps=1 --warmup_steps=0`` as a subprocess, first with
  an empty persistent compilation cache, then again on the cache the first run
  filled. ``--job=tiny`` (the default) runs ``configs/tiny.flags`` on the CPU;
  ``--job=release`` runs ``configs/carbon.flags`` on ``--device`` with a
  Carbon-500M-shaped stand-in (random weights, ~0.9 GB, bf16) and a snapshot of
  ``--window_bp`` windows (``--standin=tiny`` shrinks it to the tiny stand-in, a
  check of the script on a CPU). ``first_step_s`` is the job's own figure
  (from the training call to the end of step 1, ``metrics.json``);
  ``launch_to_first_step_s`` runs from the subprocess launch to step 1's
  ``train.progress`` event (imports, bootstrap and preflight included).
  The stand-in Carbon and the synthetic snapshot are made once beforehand, so
  neither run pays for them.
* ``{"case": "release_compile", "k": K, ...}``: the release recipe's step
  (``configs/carbon.flags`` on ``--device``, ``--batch`` rows) built
  from abstract modules, as the job builds it; for each K bucket the gradient
  program's lower and compile seconds (wall, and the compile's CPU seconds)
  and its XLA FLOP count (``gradients_gflop``, from the program with the layer
  scans unrolled: XLA counts a loop body once), and (once) the update
  program's; ``first_bucket_both_programs_s`` sums the four wall figures of the
  first bucket. The persistent cache is off for these, so every figure is a
  real compile. ``--time_steps N`` adds each bucket's median step time (ms),
  the price of padding a batch up to that bucket.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench/train_step.py


def machine() -> dict:
    return {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0]}


def _first_progress_time(log_path: Path) -> float | None:
    """Epoch seconds of the first ``train.progress`` event in a run's train.log."""
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "train.progress":
            return datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
    return None


JOB_FLAGFILES = {"tiny": "configs/tiny.flags", "release": "configs/carbon.flags"}
TINY_STANDIN_FLAGS = ("--d_state=64", "--state_layer=1", "--encoder_dtype=fp32")
"""What the release recipe needs to run on the tiny stand-in (64 wide, 2 layers): ``--standin=tiny``."""


def job_command(job: str, root: Path, run_dir: Path, cache: Path, device: str, standin: str) -> list[str]:
    """The main job's command line for one first-step measurement (``job``: ``tiny`` or ``release``)."""
    command = [
        sys.executable, "-m", "geno_lewm_jax.main", f"--flagfile={JOB_FLAGFILES[job]}",
        "--max_steps=1", "--warmup_steps=0",
        f"--model_dir={root / 'carbon'}", f"--dataset_dir={root / 'snapshot'}", f"--run_dir={run_dir}",
        f"--compilation_cache_dir={cache}",
    ]
    if job == "release":
        command.append(f"--device={device}")
        if standin == "tiny":
            command.extend(TINY_STANDIN_FLAGS)
    return command


def first_step_job(job: str, root: Path, cache: Path, label: str, device: str, standin: str) -> dict:
    """One 1-step job in a fresh run dir, compilation cache at ``cache``."""
    run_dir = root / f"run-{label}"
    launched = time.time()
    done = subprocess.run(job_command(job, root, run_dir, cache, device, standin), cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"the {job} job failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    wall = time.time() - launched
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    first = _first_progress_time(run_dir / "train.log")
    return {"case": f"{job}_job", "cache": label, "device": device if job == "release" else "cpu",
            "first_step_s": metrics["first_step_seconds"],
            "launch_to_first_step_s": None if first is None else first - launched, "process_wall_s": wall}


def run_jobs(job: str, device: str, standin: str, window_bp: int) -> None:
    """The inputs once, then the job cold and warm on one compilation cache."""
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot

    # An installed package holds its bytecode; an editable checkout where PYTHONDONTWRITEBYTECODE is
    # set (as in some sandboxes) would recompile every edited module in every timed run.
    for package in ("geno_lewm_jax", "bridge"):
        compileall.compile_dir(REPO / package, quiet=1)
    root = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    if job == "tiny":
        write_standin(root / "carbon", seed=0)
        make_synthetic_snapshot(root / "snapshot", seed=0)
    else:
        write_standin(root / "carbon", seed=0, **({} if standin == "tiny" else {"size": standin}))
        make_synthetic_snapshot(root / "snapshot", seed=0, window_bp=window_bp)
    cache = root / "xla-cache"
    for label in ("cold", "warm"):
        print(json.dumps({**first_step_job(job, root, cache, label, device, standin), **machine()}), flush=True)


def _random_batch(batch: int, k: int, d_state: int) -> object:
    import numpy as np

    from train_step import edit_rows

    from geno_lewm_jax.model import featurize_edits
    from geno_lewm_jax.training import TrainerBatch, make_action_mask

    rng = np.random.default_rng(k)
    rows = edit_rows(rng, batch, k)
    state = rng.standard_normal((batch, d_state)).astype(np.float32)
    targets = rng.standard_normal((batch, k, d_state)).astype(np.float32)
    features, mask = featurize_edits(rows), make_action_mask(rows)
    return TrainerBatch(state=state, targets=targets, features=features, action_mask=mask)


def release_compiles(buckets: list[int], batch: int, extra_flags: list[str], time_steps: int, device: str = "cpu") -> None:
    """Lower and compile the release step per K bucket (and the update program once), cache off.

    With ``time_steps`` > 0, each bucket's step then runs that many times on a
    random batch of exactly K steps (median ms reported): what a batch padded
    to that bucket costs.
    """
    from concurrent.futures import Future

    import jax
    from flax import nnx

    from geno_lewm_jax.flags import config_from_argv
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training.trainer import _UPDATE, Trainer
    from timing import median_seconds

    jax.config.update("jax_enable_compilation_cache", False)
    config = config_from_argv(["bench", "--flagfile=configs/carbon.flags", f"--device={device}", f"--batch_size={batch}",
                               *extra_flags])
    # Every K measured is a bucket of its own (a timed batch of K steps is not padded further).
    config = config.replace({"training.k_buckets": tuple(sorted(set(buckets) | {config.action.max_len}))})

    def abstract_trainer(config: object) -> Trainer:
        modules = (
            nnx.eval_shape(lambda: build_predictor(config)), nnx.eval_shape(lambda: build_action_encoder(config))
        )
        return Trainer(*modules, None, config, total_steps=config.training.max_steps)

    trainer = abstract_trainer(config)
    # XLA's cost analysis counts a loop body once: FLOPs come from the unrolled twin's lowered program.
    unrolled = abstract_trainer(config.replace({"predictor.scan_layers": False}))

    def timed(key: object) -> tuple[float, float, float]:
        """(lower s, compile s, compile CPU s of this process: steadier than wall time on a shared machine)."""
        t0 = time.perf_counter()
        lowered = trainer._lowered(key)
        t1, cpu = time.perf_counter(), time.process_time()
        done = Future()
        done.set_result(lowered.compile())
        trainer._executables[key] = done  # the step below runs this executable, not a second compile
        return t1 - t0, time.perf_counter() - t1, time.process_time() - cpu

    update_lower, update_compile, update_cpu = timed(_UPDATE)
    if time_steps:
        trainer.initialize(build_predictor(config, seed=1), build_action_encoder(config, seed=2))
    rows = batch * jax.process_count()
    for i, k in enumerate(buckets):
        lower, compile_, cpu = timed((rows, k))
        gflop = unrolled._lowered((rows, k)).cost_analysis()["flops"] / 1e9
        line = {"case": "release_compile", "k": k, "batch": rows, "gradients_lower_s": lower,
                "gradients_compile_s": compile_, "gradients_compile_cpu_s": cpu, "gradients_gflop": gflop,
                "flags": extra_flags, "device": device, "device_kind": jax.devices()[0].device_kind}
        if i == 0:
            line.update(update_lower_s=update_lower, update_compile_s=update_compile, update_compile_cpu_s=update_cpu,
                        first_bucket_both_programs_s=lower + compile_ + update_lower + update_compile)
        if time_steps:
            step_batch = _random_batch(batch, k, config.predictor.d_state)
            counter = iter(range(1, 10**6))
            line["step_ms"] = 1000 * median_seconds(lambda: trainer.train_step(step_batch, next(counter)), time_steps)
        print(json.dumps({**line, **machine()}), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", default="1,2,3,4,8,16", help="K buckets whose release step is compiled")
    parser.add_argument("--batch", type=int, default=8, help="rows of the release step (configs/carbon.flags: 8)")
    parser.add_argument("--flag", action="append", default=[], help="extra job flag of the release step (--flag=--remat)")
    parser.add_argument("--time_steps", type=int, default=0, help="also time this many steps per bucket (median ms)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "tpu"],
                        help="where the release step compiles and the release job runs (the tiny job is a CPU recipe)")
    parser.add_argument("--job", default="tiny", choices=sorted(JOB_FLAGFILES), help="whose first step is timed")
    parser.add_argument("--standin", default="500m", choices=["500m", "tiny"],
                        help="the release job's stand-in Carbon (tiny: a check of the script on a CPU)")
    parser.add_argument("--window_bp", type=int, default=12288, help="the release job's snapshot windows")
    parser.add_argument("--skip_job", action="store_true", help="only the release compiles")
    parser.add_argument("--skip_compile", action="store_true", help="only the job")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(REPO)
    sys.path[:0] = [str(REPO), str(REPO / "bench")]
    if not args.skip_job:
        run_jobs(args.job, args.device, args.standin, args.window_bp)
    if not args.skip_compile:
        release_compiles([int(k) for k in args.buckets.split(",")], args.batch, args.flag, args.time_steps, args.device)


if __name__ == "__main__":
    main()
