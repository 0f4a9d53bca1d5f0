"""``python -m geno_lewm_jax.export --run_dir R --out D``: deploy weights in the reference format.

Writes ``predictor.safetensors`` and ``action_encoder.safetensors`` holding the
geno-lewm 0.2.1 state_dict names and shapes (contiguous float32), so the
reference runtime loads them with ``load_state_dict(strict=True)``. The
weights come from the run's newest readable checkpoint (or ``--step``). A
``--sweep`` run holds several variants: ``--variant i`` picks one (required there).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from absl import flags

from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.errors import ExportFormatError, InputError

PREDICTOR_FILE = "predictor.safetensors"
ACTION_ENCODER_FILE = "action_encoder.safetensors"


def load_run_modules(run_dir: str | Path, *, step: int | None = None, variant: int | None = None) -> tuple[Any, Any, Any]:
    """(config, predictor, action_encoder) holding a run's checkpointed weights (newest readable, or ``step``).

    A sweep run's modules are those of ``variant`` (which it requires); any other run refuses one.
    """
    import jax

    from geno_lewm_jax import config as cfg
    from geno_lewm_jax.checkpointing import CheckpointStore
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training.carbon import CHECKPOINT_DIR, CONFIG_NAME
    from geno_lewm_jax.training.trainer import Trainer

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise InputError(f"{config_path} is missing: not a geno-lewm-jax run directory", details={"path": str(config_path)})
    config = cfg.load_config(config_path)
    if config.sweep:
        from geno_lewm_jax.sweep.spec import check_variant
        from geno_lewm_jax.sweep.trainer import SweepTrainer

        check_variant(config, variant)
        trainer = SweepTrainer(build_predictor(config), build_action_encoder(config), config, total_steps=config.training.max_steps)
    else:
        if variant is not None:
            raise InputError(f"--variant={variant}: {run_dir} is not a sweep run", details={"field": "variant", "value": variant})
        trainer = Trainer(build_predictor(config), build_action_encoder(config), None, config, total_steps=config.training.max_steps)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainer.state)
    store = CheckpointStore(run_dir / CHECKPOINT_DIR, async_save=False)
    try:
        if step is None:
            restored = store.restore_latest(abstract)
            if restored is None:
                raise InputError(f"{run_dir / CHECKPOINT_DIR} holds no checkpoint", details={"path": str(run_dir)})
            state = restored.state
        else:
            if step not in store.steps():
                raise InputError(f"no checkpoint at step {step} in {run_dir}", details={"field": "step", "steps": store.steps()})
            state, _ = store.restore(step, abstract)
    finally:
        store.close()
    trainer.restore_state(state)
    predictor, action_encoder = trainer.variant_modules(variant) if config.sweep else trainer.modules()
    return config, predictor, action_encoder


def export_run(
    run_dir: str | Path, out_dir: str | Path, *, step: int | None = None, overwrite: bool = False, variant: int | None = None
) -> dict[str, Path]:
    """Export the run's weights; returns the written paths. Never overwrites unless asked."""
    from safetensors.numpy import save_file

    from geno_lewm_jax.interop import to_reference_state_dict

    out_dir = Path(out_dir)
    targets = {"predictor": out_dir / PREDICTOR_FILE, "action_encoder": out_dir / ACTION_ENCODER_FILE}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]} already exists", details={"path": existing[0]}, remediation="Choose another --out or pass --overwrite."
        )
    _, predictor, action_encoder = load_run_modules(run_dir, step=step, variant=variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in (("predictor", predictor), ("action_encoder", action_encoder)):
        tensors = to_reference_state_dict(module)
        if not tensors:
            raise ExportFormatError(f"{name} produced no tensors", details={"module": name})
        tmp = targets[name].with_name(targets[name].name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": "pt", "producer": "geno_lewm_jax.export"})
        tmp.replace(targets[name])
    return targets


def main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    flags.DEFINE_string("run_dir", None, "Run directory to export.", flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory for the .safetensors files.", flag_values=fv)
    flags.DEFINE_integer("step", None, "Checkpoint step (default: newest readable).", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace existing files in --out.", flag_values=fv)
    flags.DEFINE_integer("variant", None, "The variant of a --sweep run to export (required for one).", flag_values=fv)

    def body() -> int:
        from geno_lewm_jax.flags import parse_argv

        parse_argv(fv, argv)
        for name in ("run_dir", "out"):
            if not fv[name].value:
                raise InputError(f"--{name} is required", details={"field": name})
        written = export_run(
            fv["run_dir"].value, fv["out"].value, step=fv["step"].value, overwrite=fv["overwrite"].value,
            variant=fv["variant"].value,
        )
        for path in written.values():
            print(path)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
