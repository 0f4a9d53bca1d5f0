"""The main job: what ``main`` does with a validated config.

Order: make the embedded default's inputs if asked (stand-in Carbon, synthetic
snapshot), run the preflight gate, then train and print a short summary.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

from geno_lewm_jax import config as cfg

PATH_FIELDS = (
    "encoder.model_dir",
    "data.dataset_dir",
    "runtime.run_dir",
    "encoder.feature_cache_dir",
    "runtime.compilation_cache_dir",
)


def describe(config: cfg.Config) -> str:
    """The resolved config as YAML plus trainable parameter counts."""
    from flax import nnx

    from geno_lewm_jax.model import build_action_encoder, build_predictor, count_params

    text = yaml.safe_dump(cfg.to_dict(config), sort_keys=True, default_flow_style=False)
    p = count_params(nnx.eval_shape(lambda: build_predictor(config)))
    a = count_params(nnx.eval_shape(lambda: build_action_encoder(config)))
    return f"{text}\ntrainable parameters: predictor {p:,}, action_encoder {a:,}, total {p + a:,}"


def expand_paths(config: cfg.Config) -> cfg.Config:
    """``~`` in path fields resolved once, so every later component sees the same paths."""
    updates = {}
    for name in PATH_FIELDS:
        value = cfg.get_dotted(config, name)
        if value and value.startswith("~"):
            updates[name] = str(Path(value).expanduser())
    return config.replace(updates) if updates else config


BOOTSTRAP_ROOT = "~/.cache/geno_lewm_jax"
STANDIN_MODEL_NAME = "standin-carbon"
SYNTHETIC_DATASET_NAME = "synthetic-snapshot"


def bootstrap_inputs(config: cfg.Config) -> None:
    """Create the stand-in Carbon and the synthetic snapshot where the config points, if missing.

    Only where the embedded default (``configs/tiny.flags``) keeps them: under
    ``~/.cache/geno_lewm_jax``, or in a directory whose name starts with the one it uses there.
    Anywhere else a missing directory is most likely a mistyped path to real
    inputs, so it is an InputError naming the field, not a silent random model.
    Each creation prints a warning naming the path.
    """
    targets = (
        ("encoder.model_dir", "config.json", STANDIN_MODEL_NAME, "a RANDOM stand-in Carbon checkpoint (not a trained model)"),
        ("data.dataset_dir", "dataset_manifest.json", SYNTHETIC_DATASET_NAME, "a SYNTHETIC dataset snapshot (not real data)"),
    )
    missing = []
    for field, marker, name, what in targets:
        value = cfg.get_dotted(config, field)
        if value and not (Path(value) / marker).exists():
            _check_bootstrap_target(field, Path(value), name)
            missing.append((field, Path(value), what))
    for field, path, what in missing:
        print(f"warning: --bootstrap_missing: creating {what} in {path} ({field})", file=sys.stderr)
        if field == "encoder.model_dir":
            from bridge import write_standin

            write_standin(path, seed=0, embeddings=config.runtime.standin_embeddings)
        else:
            from geno_lewm_jax.data import make_synthetic_snapshot

            make_synthetic_snapshot(path, seed=0)


def _check_bootstrap_target(field: str, path: Path, standin_name: str) -> None:
    root = Path(BOOTSTRAP_ROOT).expanduser().absolute()
    inside = path.expanduser().absolute().is_relative_to(root)
    if not inside and not path.name.startswith(standin_name):
        from geno_lewm_jax.errors import InputError

        flag = field.rsplit(".", 1)[-1]
        raise InputError(
            f"{field}={path} does not exist; --bootstrap_missing creates stand-ins only under {root}"
            f" or in a directory whose name starts with {standin_name!r}",
            details={"field": field, "path": str(path)},
            remediation=f"Check the --{flag} path, or pass --nobootstrap_missing to use only existing inputs.",
        )


def start_processes(config: cfg.Config) -> cfg.Config:
    """Join a multi-host run (before any JAX device work); the config then names this process.

    Under SLURM or on a TPU slice with no explicit flags, JAX finds the
    process index and count itself, and they are written back into
    ``runtime.process_id`` / ``runtime.num_processes`` so the data stream
    takes this host's shard.
    """
    from geno_lewm_jax.sharding import initialize_distributed

    rt = config.runtime
    pid, count = initialize_distributed(rt.coordinator_address, rt.num_processes, rt.process_id)
    if (pid, count) != (rt.process_id, rt.num_processes):
        config = config.replace({"runtime.process_id": pid, "runtime.num_processes": count})
    return config


def use_compilation_cache(config: cfg.Config) -> None:
    """Point JAX's persistent compilation cache at ``runtime.compilation_cache_dir`` (empty: leave it off).

    On by default, in a user cache directory shared by every run of the user
    (``--compilation_cache_dir`` moves it, an empty value turns it off). Every
    program is cached, not only those over JAX's default 1 s of compile (a
    restart should pay for none), and on GPUs XLA's per-fusion autotuning
    results go beside it, so a program compiled anew (another K bucket, a
    changed config) still skips the GEMM autotuning of fusions seen before.
    """
    if config.runtime.compilation_cache_dir:
        import jax

        jax.config.update("jax_compilation_cache_dir", config.runtime.compilation_cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_enable_xla_caches", "xla_gpu_per_fusion_autotune_cache_dir")


def run_job(config: cfg.Config, *, config_path: str | None = None) -> int:
    from geno_lewm_jax.training.carbon import run_carbon_training
    from geno_lewm_jax.training.preflight import run_training_preflight

    config = expand_paths(config)
    config = start_processes(config)
    use_compilation_cache(config)
    if config.runtime.bootstrap_missing:
        if config.runtime.process_id == 0:  # one writer; the others wait for it
            bootstrap_inputs(config)
        if config.runtime.num_processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("geno_lewm_jax.bootstrap")
    preflight = run_training_preflight(config, config_path=config_path, write=False)
    report = run_carbon_training(config, command=shlex.join(sys.argv), preflight_report=preflight)
    tps = f"{report.tuples_per_second:.1f} tuples/s" if report.tuples_per_second else "n/a"
    loss = f"{report.final_loss:.5g}" if report.final_loss is not None else "n/a"
    how = f"stopped by {report.stopped_by_signal}" if report.stopped_by_signal else "finished"
    skill = f"{report.val_delta_r2:.3f}" if report.val_delta_r2 is not None else "n/a"
    print(
        f"run {report.run_id} {how}: {report.steps_completed}/{report.steps_requested} steps"
        f" (resumed from {report.resumed_from_step}), final loss {loss}, {tps},"
        f" wall {report.wall_seconds:.1f} s\nskill over the no-change baseline: val_delta_r2 {skill} (0 = predict"
        f" no change, 1 = perfect); collapse alerts: {report.collapse_alert_count}\nrun dir: {report.run_dir}"
    )
    return 0
