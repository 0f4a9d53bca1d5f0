"""``bench/gpu.py``'s end-to-end runs: our main job (uncached and cached) and geno-lewm 0.2.1's.

Our job runs the release recipe (``configs/carbon.flags``) on the stand-in
Carbon and a synthetic snapshot, with validation off and one checkpoint at
the end, so the timed window is pure training. Its steady-state tuples/s come
from the ``train.progress`` events after the first ``WARM_EVENTS`` (step 1,
which waits for the compile, and the producer's ramp-up): tuples trained in
those windows over their wall time, validation and checkpoint time left out.

Every job's programs are compiled before any job runs, by a worker of their
own (``start_compiles``) into the persistent compilation cache of their
determinism; the jobs load them from it. The cached job reads the states the
largest uncached job encoded (``fill_cache``), so no state goes through
Carbon twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

from gpu_sizes import Sizes

REPO = Path(__file__).resolve().parents[1]
WARM_EVENTS = 2


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One run of our main job."""

    batch: int
    timed_steps: int
    log_every: int
    cached: bool
    deterministic: bool
    stream: str
    compute_dtype: str

    @property
    def max_steps(self) -> int:
        return self.log_every + self.timed_steps  # the WARM_EVENTS windows cover steps 1..log_every

    @property
    def name(self) -> str:
        cache = "cached" if self.cached else "uncached"
        return f"b{self.batch}-{cache}-{'det' if self.deterministic else 'nondet'}"


def job_config(spec: JobSpec, sizes: Sizes, root: Path, run_dir: Path) -> Any:
    """Our Config for ``spec``: configs/carbon.flags plus the bench's inputs, cadences and cache."""
    from geno_lewm_jax.flags import config_from_argv

    steps = spec.max_steps  # the warm-up of the learning rate must end before the last step (short cached jobs)
    cache = [f"--feature_cache_dir={feature_cache_dir(root)}"] if spec.cached else ["--nofeature_cache"]
    return config_from_argv([
        "bench", f"--flagfile={REPO / 'configs' / 'carbon.flags'}", *sizes.job_flags,
        f"--model_dir={root / 'carbon'}", f"--dataset_dir={root / 'snapshot'}", f"--run_dir={run_dir}",
        f"--run_id=bench-{spec.name}", f"--batch_size={spec.batch}", f"--max_steps={steps}", f"--warmup_steps={min(10, steps - 1)}",
        f"--log_every_steps={spec.log_every}", f"--checkpoint_every_steps={steps}", f"--collapse_log_every_steps={steps}",
        "--validation_batches=0", f"--stream={spec.stream}", f"--compute_dtype={spec.compute_dtype}",
        "--deterministic" if spec.deterministic else "--nodeterministic", *cache,
        f"--compilation_cache_dir={xla_cache_dir(root, spec.deterministic)}", "--nobootstrap_missing",
    ])


def feature_cache_dir(root: Path) -> Path:
    return root / "features"


def xla_cache_dir(root: Path, deterministic: bool) -> Path:
    """One persistent compilation cache per determinism: XLA_FLAGS are part of every key, and the
    two compile workers run at the same time, so each writes a directory of its own."""
    return root / ("xla-cache-det" if deterministic else "xla-cache")


def use_xla_cache(path: Path) -> None:
    """The jobs' cache settings (``job.use_compilation_cache``) for a worker's own programs."""
    from types import SimpleNamespace

    from geno_lewm_jax.job import use_compilation_cache

    use_compilation_cache(SimpleNamespace(runtime=SimpleNamespace(compilation_cache_dir=str(path))))


def start_job_compiles(configs: list[Any]) -> list[tuple[Any, int, list[int]]]:
    """Start compiling every job's step, each on its own Trainer's background threads (so they overlap).

    The same Trainer the job builds (from the modules' shapes, the job's config
    and mesh), so the same programs and cache keys.
    """
    from flax import nnx

    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.job import use_compilation_cache
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training.trainer import Trainer

    started = []
    for config in configs:
        use_compilation_cache(config)
        stream = TupleStream.from_config(load_snapshot(Path(config.data.dataset_dir)), config)
        buckets = list(dict.fromkeys(b.k_bucket for b in stream.take(8)))
        predictor = nnx.eval_shape(lambda: build_predictor(config, seed=0))
        action_encoder = nnx.eval_shape(lambda: build_action_encoder(config, seed=0))
        trainer = Trainer(predictor, action_encoder, None, config, total_steps=config.training.max_steps)
        trainer.precompile(config.data.batch_size, buckets)
        started.append((trainer, config.data.batch_size, buckets))
    return started


def finish_compiles(started: list[tuple[Any, int, list[int]]]) -> None:
    """Wait for every started compile (each lands in the persistent cache) and release the Trainers."""
    for trainer, batch, buckets in started:
        trainer.precompile(batch, buckets, wait=True)
        trainer.close()


def load_carbon(config: Any) -> Any:
    """The worker's one CarbonEncoder, handed to each of its jobs (``run_carbon_training``'s ``encoder``).

    Carbon's weights load once per worker instead of once per job; no job
    times its set-up, so only the jobs' ``first_step_s`` change (they leave
    the load out). On the CPU it gets half the cores, as the job gives its own.
    """
    from bridge import CarbonEncoder

    encoder = CarbonEncoder.from_config(config)
    if str(encoder.device).startswith("cpu"):
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    return encoder


@contextlib.contextmanager
def fill_cache(encoder: Any, cache_dir: Path):
    """While open, every pooled row ``encoder`` computes is also appended to the feature cache at ``cache_dir``.

    Wraps the encoder's one encoding path (``encode_tensor``), so the job that
    runs meanwhile stays uncached (``encode_batch_jax`` over all of a batch's
    states, as timed) and its own states fill the cache the cached jobs read:
    Carbon runs once per state. The copy to the host waits for nothing the
    encoder did not already wait for (it checks its output for NaN). Yields a
    dict whose ``rows`` counts the rows written.
    """
    from bridge import FeatureCache
    from bridge.cached import cache_keys

    written = {"rows": 0}
    original = encoder.encode_tensor
    with FeatureCache(cache_dir) as cache:

        def encode_tensor(sequences: Any, loci: Any) -> Any:
            out = original(sequences, loci)
            written["rows"] += cache.put_many(cache_keys(encoder, sequences, loci), out.cpu().numpy())
            return out

        encoder.encode_tensor = encode_tensor
        try:
            yield written
        finally:
            del encoder.encode_tensor  # the class's method again


def fill_job(specs: list[JobSpec]) -> JobSpec | None:
    """The uncached deterministic job that encodes the most tuples: its states fill the feature cache."""
    uncached = [s for s in specs if not s.cached and s.deterministic]
    return max(uncached, key=lambda s: s.batch * s.max_steps, default=None)


class CompileCacheCounter:
    """Counts JAX's persistent compilation-cache hits and misses (shows whether a job loaded its programs)."""

    def __init__(self) -> None:
        import jax

        self.hits = 0
        self.misses = 0
        jax.monitoring.register_event_listener(self._on_event)

    def _on_event(self, event: str, **_: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self.hits += 1
        elif event == "/jax/compilation_cache/cache_misses":
            self.misses += 1

    def take(self) -> dict[str, int]:
        out, self.hits, self.misses = {"hits": self.hits, "misses": self.misses}, 0, 0
        return out


def steady_state(log_path: Path, batch: int) -> dict[str, Any]:
    """Tuples/s and where the time went, over the progress windows after the first WARM_EVENTS."""
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    progress = [e for e in events if e["event"] == "train.progress"]
    if len(progress) <= WARM_EVENTS:
        return {"tuples_per_s": None, "timed_steps": 0}
    timed = progress[WARM_EVENTS:]
    steps = timed[-1]["step"] - progress[WARM_EVENTS - 1]["step"]
    seconds = sum(e["time_wall"] - e["time_validation"] - e["time_checkpoint"] for e in timed)
    phases = {k: round(sum(e[k] for e in timed), 3) for k in timed[0] if k.startswith(("time_", "producer_"))}
    hit_rates = [e["cache_hit_rate"] for e in timed if "cache_hit_rate" in e]
    return {
        "tuples_per_s": round(steps * batch / seconds, 2),
        "timed_steps": steps,
        "step_ms": round(seconds / steps * 1e3, 3),
        "seconds": phases,
        "cache_hit_rate": round(min(hit_rates), 4) if hit_rates else None,
    }


def run_ours(spec: JobSpec, sizes: Sizes, root: Path, counter: CompileCacheCounter, encoder: Any = None) -> dict:
    """One run of our main job; its steady state, first step and whether its programs came from the cache."""
    from geno_lewm_jax.training.carbon import run_carbon_training

    run_dir = root / "runs" / spec.name
    config = job_config(spec, sizes, root, run_dir)
    counter.take()
    started = time.monotonic()
    report = run_carbon_training(config, encoder=encoder, progress_stream=io.StringIO())
    return {
        "section": "main_job", "side": "geno_lewm_jax", "run": spec.name, "batch": spec.batch, "cached": spec.cached,
        "deterministic": spec.deterministic, "stream": spec.stream, "compute_dtype": spec.compute_dtype,
        **steady_state(run_dir / "train.log", spec.batch),
        "report_tuples_per_s": report.tuples_per_second, "first_step_s": report.first_step_seconds,
        "wall_s": round(time.monotonic() - started, 2), "compile_cache": counter.take(),
        "val_delta_r2": report.val_delta_r2, "val_cos_skill": report.val_cos_skill,  # skill over the no-change baseline
    }


def run_reference_job(sizes: Sizes, root: Path, steps: int, batch: int) -> dict:
    """geno-lewm 0.2.1's ``run_carbon_training`` on the same stand-in and snapshot (bench/e2e.py's timing)."""
    from e2e import run_reference

    overrides = {
        "phase": "phase2",
        "encoder": sizes.encoder,
        "predictor": sizes.reference_predictor,
        "runtime": {"device": sizes.device},
    }
    row = run_reference(root / "carbon", root / "snapshot", root / "runs" / "reference", steps, batch, overrides)
    return {"section": "main_job", "run": f"b{batch}-reference", **row, "timed_steps": steps - 1}
