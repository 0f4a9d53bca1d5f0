"""The accelerator benchmark: ours against geno-lewm 0.2.1 on one GPU, in one command, in about 8 minutes.

    python bench/gpu.py                 # on an NVIDIA GPU: `pip install -e ".[test]"` plus JAX's CUDA build
    python bench/gpu.py --smoke         # tiny stand-in and predictor on the CPU: exercises every section

Prints one JSON line per measurement, then one summary line (``"section":
"summary"``) with the ratios and the issue-13 goal checks. Sections, each in a
fresh worker process (XLA reads ``--xla_gpu_deterministic_ops`` once per
process, and a fresh process gives every side the whole GPU):

1. ``inputs``: the Carbon-500M-shaped stand-in (``bridge.write_standin(size="500m")``,
   random weights, ~0.9 GB) and a synthetic snapshot of 12,288-bp windows.
2. ``step``: the chip's bf16 matmul rate (one big ``jnp.dot``), then our jitted
   train step against ``TorchTrainer`` at each ``--step_batches`` x float32 / bfloat16
   (the reference has no bf16 switch: it runs under ``torch.autocast(bfloat16)``, the
   torch idiom for what our ``--compute_dtype=bfloat16`` does: bf16 matmuls, float32
   parameters). TFLOP/s from XLA's FLOP count of our step (``Trainer.step_flops``),
   for both sides.
3. ``carbon``: the Carbon forward alone (``CarbonEncoder.encode_batch_jax``,
   synchronised) over the states of the uncached job's own batches: the
   Carbon-forward bound on an uncached run's tuples/s. Its pooled rows fill the
   feature cache the cached job reads. Then ``CarbonEncoder`` against
   ``CarbonStateEncoder`` at ``--window_bp``, each ``--encode_batches``.
4. ``main`` (``--deterministic``, the release recipe): our main job uncached at each
   ``--main_batches`` and cached at ``--cached_batch``; every job's programs are
   compiled together first, into a persistent compilation cache the jobs load from.
5. ``main`` without ``--deterministic``: ``--nondet_batches`` uncached and the cached job.
6. ``reference``: geno-lewm 0.2.1's ``run_carbon_training`` at batch 8 (its default
   ``deterministic=False``).

Time budget on one NVIDIA H200 (estimates: no GPU was lent when this was written;
every section's ``section_wall`` line shows what it took): inputs ~25 s (writing the
0.9 GB stand-in); step ~60 s (imports, the four compiles two at a time ~30 s, timing
~15 s); carbon ~75 s (216 batches of 64 tuples, ~28k states at an estimated ~600
states/s, ~50 s, then the reference encoder, whose per-float Python pooling costs ~3 s
per 8 windows); main deterministic ~130 s (the three compiles at once ~30 s, batch 8
~20 s, batch 64 ~50 s at the Carbon bound, cached batch 256 ~10 s, a Carbon load each);
main non-deterministic ~100 s; reference ~90 s (first step ~23 s, then ~11 s per step).
About 8 minutes in all; every count is a flag.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SECTIONS = ("step", "carbon", "main", "reference")
GOALS = {  # issue 13's GPU goals
    "uncached_b64_share_of_carbon_bound": 0.80,
    "cached_tuples_per_s": 5000.0,
    "step_b1024_bf16_share_of_matmul": 0.25,
}
PRODUCER_AHEAD = 4  # batches a job's Carbon producer encodes beyond its last step (prefetch queue + in flight)
SMOKE_DEFAULTS = {  # shapes and counts a loaded 2-core CPU gets through in a few minutes
    "window_bp": 4096, "main_batches": "8", "nondet_batches": "", "main_timed_steps": 8, "main_log_every": 4,
    "cached_batch": 16, "cached_timed_steps": 8, "cached_log_every": 4, "bound_batch": 8, "reference_steps": 2,
    "step_batches": "8", "step_repeats": 2, "reference_step_repeats": 1, "encode_batches": "2", "encode_repeats": 1,
    "reference_encode_repeats": 1,
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny stand-in and predictor on the CPU, few steps (a test of the script)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (main's cached job reads the cache carbon fills)")
    p.add_argument("--work_dir", default="", help="a new or empty directory for inputs and runs (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (inputs, run dirs with train.log, caches, worker stderr)")
    p.add_argument("--window_bp", type=int, default=12288, help="window length of the synthetic snapshot")
    p.add_argument("--stream", default="legacy", choices=["legacy", "kstep"],
                   help="legacy: K=1, the reference's stream and one compiled step per job; kstep: the release mix (K up to 16)")
    p.add_argument("--compute_dtype", default="float32", choices=["float32", "bfloat16"], help="our main job's step dtype")
    p.add_argument("--main_batches", default="8,64", help="uncached main-job batch sizes (deterministic)")
    p.add_argument("--nondet_batches", default="64", help="uncached batch sizes also run without --deterministic")
    p.add_argument("--main_timed_steps", type=int, default=200, help="timed steps per uncached job, after the warm-up windows")
    p.add_argument("--main_log_every", type=int, default=20, help="progress cadence of the uncached jobs (warm-up: the first window)")
    p.add_argument("--cached_batch", type=int, default=256)
    p.add_argument("--cached_timed_steps", type=int, default=40)
    p.add_argument("--cached_log_every", type=int, default=10)
    p.add_argument("--bound_batch", type=int, default=64, help="batch of the Carbon-forward bound (the uncached goal's batch)")
    p.add_argument("--reference_steps", type=int, default=6, help="reference main-job steps (timed: all after the first)")
    p.add_argument("--step_batches", default="64,1024")
    p.add_argument("--step_k", type=int, default=1)
    p.add_argument("--step_repeats", type=int, default=50, help="our steps dispatched back to back per case")
    p.add_argument("--reference_step_repeats", type=int, default=10)
    p.add_argument("--encode_batches", default="8,32")
    p.add_argument("--encode_repeats", type=int, default=5)
    p.add_argument("--reference_encode_repeats", type=int, default=1, help="~3 s per 8 windows on an H200")
    p.add_argument("--section_timeout", type=int, default=900, help="seconds before a worker is killed")
    p.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--_root", default="", help=argparse.SUPPRESS)
    p.add_argument("--_deterministic", type=int, default=1, help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:  # smoke values replace the defaults, never a value given explicitly
        given = {a.split("=")[0].lstrip("-") for a in (argv if argv is not None else sys.argv[1:])}
        for name, value in SMOKE_DEFAULTS.items():
            if name not in given:
                setattr(args, name, value)
    bad = [s for s in args.sections.split(",") if s not in SECTIONS]
    if bad:
        parser.error(f"--sections: unknown {bad}; choose from {','.join(SECTIONS)}")
    return args


# --- workers (one process each) -----------------------------------------------------------------
def _emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def _job_specs(args: argparse.Namespace, deterministic: bool) -> list:
    from gpu_jobs import JobSpec

    uncached = _ints(args.main_batches) if deterministic else _ints(args.nondet_batches)
    common = {"deterministic": deterministic, "stream": args.stream, "compute_dtype": args.compute_dtype}
    specs = [JobSpec(b, args.main_timed_steps, args.main_log_every, cached=False, **common) for b in uncached]
    specs.append(JobSpec(args.cached_batch, args.cached_timed_steps, args.cached_log_every, cached=True, **common))
    return specs


def _accelerators(sizes) -> dict:
    """The devices JAX and torch see; refuses a GPU run where either sees none (before the 0.9 GB write)."""
    import jax
    import torch

    out = {"jax_backend": jax.default_backend(), "jax_device": jax.devices()[0].device_kind,
           "torch_cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if sizes.device == "cuda" and out["jax_backend"] != "gpu":
        raise SystemExit(f"bench/gpu.py: JAX sees no GPU (backend {out['jax_backend']}); install its CUDA build,"
                         " e.g. pip install -U 'jax[cuda12]', or run --smoke on a CPU")
    if sizes.device == "cuda" and out["torch_cuda"] is None:
        raise SystemExit("bench/gpu.py: torch sees no CUDA device; install a CUDA build of torch")
    return out


def _worker_inputs(args, sizes, root: Path) -> None:
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot

    devices = _accelerators(sizes)
    size = {} if sizes.standin == "tiny" else {"size": sizes.standin}  # "500m": bridge.standin of issue 13 item 5
    write_standin(root / "carbon", seed=0, **size)
    make_synthetic_snapshot(root / "snapshot", seed=0, window_bp=args.window_bp)
    _emit({"section": "inputs", "standin": sizes.standin, "window_bp": args.window_bp, **devices})


def _worker_carbon(args, sizes, root: Path) -> None:
    import dataclasses

    from gpu_components import carbon_bound_row, encoder_rows
    from gpu_jobs import job_config

    cached = [s for s in _job_specs(args, True) if s.cached][0]
    bound = dataclasses.replace(cached, batch=args.bound_batch, cached=False)
    config = job_config(bound, sizes, root, root / "runs" / "carbon")
    if sizes.device == "cpu":  # as the job does: Carbon gets half the cores, the jitted step the rest
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    # every tuple the cached job reads, and the batches its producer encodes ahead of the last step
    batches = -(-(cached.max_steps + PRODUCER_AHEAD) * cached.batch // args.bound_batch)
    _emit({**carbon_bound_row(config, root / "features", batches), "window_bp": args.window_bp})
    batch_sizes = _ints(args.encode_batches)
    for row in encoder_rows(config, sizes, args.window_bp, batch_sizes, args.encode_repeats, args.reference_encode_repeats):
        _emit(row)


def _worker_main(args, sizes, root: Path) -> None:
    from gpu_jobs import CompileCacheCounter, job_config, precompile_jobs, run_ours

    specs = _job_specs(args, bool(args._deterministic))
    counter = CompileCacheCounter()
    started = time.monotonic()
    precompile_jobs([job_config(s, sizes, root, root / "runs" / s.name) for s in specs])
    _emit({"section": "main_precompile", "deterministic": bool(args._deterministic), "jobs": [s.name for s in specs],
           "seconds": round(time.monotonic() - started, 2), "compile_cache": counter.take()})
    for spec in specs:
        _emit(run_ours(spec, sizes, root, counter))


def _worker_step(args, sizes, root: Path) -> None:
    from gpu_components import train_step_rows

    for row in train_step_rows(sizes, _ints(args.step_batches), ["float32", "bfloat16"], args.step_k,
                               args.step_repeats, args.reference_step_repeats):
        _emit(row)


def _worker_reference(args, sizes, root: Path) -> None:
    from gpu_jobs import run_reference_job

    _emit(run_reference_job(sizes, root, args.reference_steps, batch=8))


WORKERS = {"inputs": _worker_inputs, "step": _worker_step, "carbon": _worker_carbon, "main": _worker_main,
           "reference": _worker_reference}


def run_worker(args: argparse.Namespace) -> None:
    from gpu_sizes import sizes_for

    WORKERS[args._worker](args, sizes_for(args.smoke), Path(args._root))


# --- the parent: runs the workers, relays their lines, sums up -------------------------------------
def _spawn(name: str, argv: list[str], root: Path, timeout: int, deterministic: bool = True) -> list[dict]:
    """Run one worker, relay its JSON lines as they come; an error line (and the stderr tail) if it fails."""
    from geno_lewm_jax.training.reproducibility import DETERMINISTIC_XLA_FLAG  # XLA reads it when the backend starts

    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "OPENBLAS_NUM_THREADS": "1"}
    flags = env.get("XLA_FLAGS", "").replace(DETERMINISTIC_XLA_FLAG, "").strip()
    env["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_XLA_FLAG}".strip() if (deterministic and name == "main") else flags
    command = [sys.executable, str(Path(__file__).resolve()), *argv, f"--_worker={name}", f"--_root={root}",
               f"--_deterministic={int(deterministic)}"]
    log = root / f"worker-{name}-{int(deterministic)}.stderr"
    started = time.monotonic()
    rows: list[dict] = []
    with open(log, "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        for line in proc.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                sys.stderr.write(line)
                continue
            rows.append(row)
            _emit(row)
        timer.cancel()
        code = proc.wait()
    wall = round(time.monotonic() - started, 1)
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        rows.append({"section": name, "error": f"worker exited with {code}", "deterministic": deterministic, "stderr_tail": tail})
        _emit(rows[-1])
    _emit({"section": "section_wall", "worker": name, "deterministic": deterministic, "section_wall_s": wall})
    return rows


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def _goal(value: float | None, goal: float) -> dict:
    return {"value": value, "goal": f">= {goal}", "met": None if value is None else value >= goal}


def summary(rows: list[dict], args: argparse.Namespace, wall: float) -> dict:
    """Ratios and goal checks from the measurement rows."""
    jobs = [r for r in rows if r.get("section") == "main_job"]
    ours_b8 = _find(jobs, batch=8, cached=False, deterministic=True)
    reference = _find(jobs, side="geno-lewm 0.2.1")
    bound = _find(rows, section="carbon_bound")
    b64 = {d: _find(jobs, batch=args.bound_batch, cached=False, deterministic=d) for d in (True, False)}
    cached = {d: _find(jobs, cached=True, deterministic=d) for d in (True, False)}
    step = _find(rows, section="train_step", batch=1024, compute_dtype="bfloat16") or {}
    bound_rate = bound.get("bound_tuples_per_s") if bound else None
    rate = lambda r: r.get("tuples_per_s") if r else None  # noqa: E731
    matmul = _find(rows, section="bf16_matmul")
    return {
        "section": "summary",
        "smoke": args.smoke,
        "device_kind": matmul.get("device_kind") if matmul else None,
        "bf16_matmul_tflops": matmul.get("tflops") if matmul else None,
        "main_b8_ours_over_reference": _ratio(rate(ours_b8), rate(reference)),
        "deterministic_over_nondeterministic_tuples_per_s": {
            f"b{args.bound_batch}_uncached": _ratio(rate(b64[True]), rate(b64[False])),
            f"b{args.cached_batch}_cached": _ratio(rate(cached[True]), rate(cached[False])),
        },
        "goals": {
            name: _goal(value, GOALS[name])
            for name, value in (
                ("uncached_b64_share_of_carbon_bound", _ratio(rate(b64[True]), bound_rate)),
                ("cached_tuples_per_s", rate(cached[True])),
                ("step_b1024_bf16_share_of_matmul", step.get("fraction_of_bf16_matmul")),
            )
        },
        "errors": [r["section"] for r in rows if "error" in r],
        "wall_s": round(wall, 1),
    }


def main() -> None:
    args = parse_args()
    if args._worker:
        run_worker(args)
        return
    started = time.monotonic()
    if args.work_dir:
        root = Path(args.work_dir).expanduser().resolve()
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"bench/gpu.py: --work_dir {root} is not empty; give a new or empty directory")
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    argv = sys.argv[1:]
    rows: list[dict] = []
    try:
        rows += _spawn("inputs", argv, root, args.section_timeout)
        if any("error" in r for r in rows):
            raise SystemExit("bench/gpu.py: could not write the inputs (see the error line above)")
        chosen = args.sections.split(",")
        for name in (s for s in SECTIONS if s in chosen):
            rows += _spawn(name, argv, root, args.section_timeout)
            if name == "main":
                rows += _spawn(name, argv, root, args.section_timeout, deterministic=False)
        _emit(summary(rows, args, time.monotonic() - started))
    finally:
        if not args.keep:  # only what this run wrote: the directory was new or empty
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
