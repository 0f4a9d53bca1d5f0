"""``python -m geno_lewm_jax.export --run_dir R --out D``: deploy weights in the reference format.

Writes ``predictor.safetensors`` and ``action_encoder.safetensors`` holding the
geno-lewm 0.2.1 state_dict names and shapes (contiguous float32), so the
reference runtime loads them with ``load_state_dict(strict=True)``. The
weights come from the run's newest checkpoint (or ``--step``); the step
exported is printed.

Export refuses, naming the fields, a run the reference cannot load: its
``build_predictor`` fixes ``d_hidden = ffn_dim = 768`` and two self blocks
(``--allow_reference_mismatch`` exports anyway, for geno-lewm-jax consumers).
Settings that load but make the reference compute something else (causal
mode, another ``max_window_bp``) are warned about. It also refuses when the
newest checkpoint is unreadable rather than silently exporting an older one
(``--step`` picks one explicitly). It never changes the run directory. The
same checkpoint always exports to byte-identical files. A ``--sweep`` run
holds several variants: ``--variant i`` picks one (required there, refused elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from absl import flags

from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.errors import CheckpointCorruptError, ExportFormatError, InputError

PREDICTOR_FILE = "predictor.safetensors"
ACTION_ENCODER_FILE = "action_encoder.safetensors"
SAFETENSORS_METADATA = {"format": "pt", "producer": "geno_lewm_jax.export"}

# What geno-lewm 0.2.1's loader builds whatever the config says (geno_lewm.predictor.build_predictor
# and geno_lewm.deploy.runtime._build_runtime_action_encoder).
REFERENCE_FIXED_SHAPES = {"predictor.d_hidden": 768, "predictor.ffn_dim": 768, "predictor.n_self_layers": 2}
REFERENCE_FIXED_BEHAVIOUR = {"predictor.causal": False, "action.max_window_bp": 12288}


@dataclasses.dataclass(frozen=True)
class ReferenceMismatch:
    """A config value the reference loader does not follow: ``loads`` is False when strict loading fails."""

    field: str
    value: Any
    reference: Any
    loads: bool

    def describe(self) -> str:
        effect = "its weights do not load" if not self.loads else "it loads but computes differently"
        return f"{self.field}={self.value!r} (the reference uses {self.reference!r}: {effect})"


def reference_mismatches(config: Any) -> list[ReferenceMismatch]:
    """The config values geno-lewm 0.2.1's loader hard-codes differently."""
    from geno_lewm_jax import config as cfg

    out = []
    for table, loads in ((REFERENCE_FIXED_SHAPES, False), (REFERENCE_FIXED_BEHAVIOUR, True)):
        for field, reference in table.items():
            value = cfg.get_dotted(config, field)
            if value != reference:
                out.append(ReferenceMismatch(field, value, reference, loads))
    return out


@dataclasses.dataclass(frozen=True)
class RunWeights:
    """A run's modules holding one checkpoint's weights."""

    config: Any
    predictor: Any
    action_encoder: Any
    step: int
    unreadable_newer: tuple[tuple[int, str], ...]  # (step, reason) of newer checkpoints that did not read


def load_run_weights(run_dir: str | Path, *, step: int | None = None, variant: int | None = None) -> RunWeights:
    """The run's newest readable checkpoint (or ``step``) in fresh modules; the run dir is left as it is.

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
    skipped: tuple[tuple[int, str], ...] = ()
    try:
        _check_layout(store, step, run_dir / CHECKPOINT_DIR)
        if step is None:
            restored = store.restore_latest(abstract, move_aside=False)
            if restored is None:
                raise InputError(f"{run_dir / CHECKPOINT_DIR} holds no checkpoint", details={"path": str(run_dir)})
            state, step, skipped = restored.state, restored.step, restored.skipped
        else:
            if step not in store.steps():
                raise InputError(f"no checkpoint at step {step} in {run_dir}", details={"field": "step", "steps": store.steps()})
            try:
                state, _ = store.restore(step, abstract)
            except Exception as exc:  # noqa: BLE001 - any read failure means this step is unusable
                raise CheckpointCorruptError(
                    f"checkpoint at step {step} in {run_dir} is unreadable ({type(exc).__name__})",
                    details={"field": "step", "step": step},
                    remediation=f"Choose another --step from {store.steps()}.",
                ) from None
    finally:
        store.close()
    trainer.restore_state(state)
    predictor, action_encoder = trainer.variant_modules(variant) if config.sweep else trainer.modules()
    return RunWeights(config, predictor, action_encoder, int(step), skipped)


def _check_layout(store: Any, step: int | None, checkpoints: Path) -> None:
    """Refuse a checkpoint written in a parameter layout this version does not hold (see run_state.META_SCHEMA)."""
    from geno_lewm_jax.training.run_state import check_schema

    if step is None:
        found = store.latest_readable_meta(move_aside=False)
        meta = None if found is None else found.meta
    else:
        try:
            meta = store.read_meta(step) if step in store.steps() else None
        except Exception:  # noqa: BLE001 - an unreadable meta is reported by the restore that follows
            meta = None
    if meta is not None:
        check_schema(meta, checkpoints, remediation="Export it with the geno-lewm-jax version that wrote it.")


def load_run_modules(run_dir: str | Path, *, step: int | None = None, variant: int | None = None) -> tuple[Any, Any, Any]:
    """(config, predictor, action_encoder) holding a run's checkpointed weights (newest readable, or ``step``)."""
    weights = load_run_weights(run_dir, step=step, variant=variant)
    return weights.config, weights.predictor, weights.action_encoder


def canonical_safetensors(blob: bytes) -> bytes:
    """``blob`` with its JSON header's keys sorted (safetensors writes ``__metadata__`` in hash order).

    The sorted header has the same length, so the data offsets stay valid.
    """
    n = int.from_bytes(blob[:8], "little")
    raw = blob[8 : 8 + n]
    header = json.loads(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(text) > n:
        raise ExportFormatError("safetensors header grew when sorted", details={"length": n})
    return blob[:8] + text + b" " * (n - len(text)) + blob[8 + n :]


@dataclasses.dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote: which checkpoint step, and the files by module name."""

    step: int
    paths: dict[str, Path]


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    step: int | None = None,
    overwrite: bool = False,
    allow_reference_mismatch: bool = False,
    warn: Any = None,
    variant: int | None = None,
) -> Exported:
    """Export one checkpoint's weights; returns the step and the written paths. Never overwrites unless asked.

    ``warn(line)`` receives each warning (default: print to stderr).
    """
    from safetensors.numpy import save

    from geno_lewm_jax.interop import to_reference_state_dict

    warn = warn or (lambda line: print(line, file=sys.stderr))
    out_dir = Path(out_dir)
    targets = {"predictor": out_dir / PREDICTOR_FILE, "action_encoder": out_dir / ACTION_ENCODER_FILE}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]} already exists", details={"path": existing[0]}, remediation="Choose another --out or pass --overwrite."
        )
    weights = load_run_weights(run_dir, step=step, variant=variant)
    if weights.unreadable_newer:
        bad = [s for s, _ in weights.unreadable_newer]
        raise CheckpointCorruptError(
            f"the newest checkpoint(s) of {run_dir} are unreadable (steps {bad}); the newest readable one is step {weights.step}",
            details={"path": str(run_dir), "unreadable": list(weights.unreadable_newer), "readable": weights.step},
            remediation=f"Pass --step={weights.step} to export that step, or resume the run first (it moves them aside).",
        )
    mismatches = reference_mismatches(weights.config)
    breaking = [m for m in mismatches if not m.loads]
    if breaking and not allow_reference_mismatch:
        raise ExportFormatError(
            "geno-lewm 0.2.1 cannot load this run's weights: " + "; ".join(m.describe() for m in breaking),
            details={"fields": [m.field for m in breaking]},
            remediation="Train with --d_hidden=768 --ffn_dim=768 --n_self_layers=2 for reference-loadable weights, "
            "or pass --allow_reference_mismatch to export for geno-lewm-jax consumers only.",
        )
    for m in mismatches:
        warn(f"warning: export: {m.describe()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in (("predictor", weights.predictor), ("action_encoder", weights.action_encoder)):
        tensors = to_reference_state_dict(module)
        if not tensors:
            raise ExportFormatError(f"{name} produced no tensors", details={"module": name})
        tmp = targets[name].with_name(targets[name].name + ".tmp")
        tmp.write_bytes(canonical_safetensors(save(tensors, metadata=SAFETENSORS_METADATA)))
        tmp.replace(targets[name])
    return Exported(step=weights.step, paths=targets)


def main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    flags.DEFINE_string("run_dir", None, "Run directory to export.", flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory for the .safetensors files.", flag_values=fv)
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest, which must be readable).", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace existing files in --out.", flag_values=fv)
    flags.DEFINE_bool(
        "allow_reference_mismatch",
        False,
        "Export weights geno-lewm 0.2.1 cannot load (d_hidden/ffn_dim other than 768, n_self_layers other than 2).",
        flag_values=fv,
    )
    flags.DEFINE_integer("variant", None, "The variant of a --sweep run to export (required for one).", flag_values=fv)

    def body() -> int:
        from geno_lewm_jax.flags import parse_argv

        parse_argv(fv, argv, usage=__doc__ or "")
        for name in ("run_dir", "out"):
            if not fv[name].value:
                raise InputError(f"--{name} is required", details={"field": name})
        exported = export_run(
            fv["run_dir"].value,
            fv["out"].value,
            step=fv["step"].value,
            overwrite=fv["overwrite"].value,
            allow_reference_mismatch=fv["allow_reference_mismatch"].value,
            variant=fv["variant"].value,
        )
        print(f"exported step {exported.step} of {fv['run_dir'].value}")
        for path in exported.paths.values():
            print(path)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
