"""The frozen, validated run configuration.

One tree of frozen dataclasses holds every setting. Its sections and field
names are those of the geno-lewm 0.2.1 schema, so an existing GenoLeWM
training YAML loads unchanged; sections also carry the fields this project
adds (paths, the state contract, checkpoint cadence, sharding...). Defaults
are the Carbon-500M release recipe, not the reference's schema defaults
(whose ``predictor.d_state=512`` cannot run against Carbon-500M).

The config is built once (from flags in ``main``, or with :func:`load_config`)
and passed down; no other module reads flags.

An imported mapping (a YAML file, a dict, the reference's own defaults) and
explicit values (flags, dotted overrides) are validated alike, with one
difference that lets geno-lewm 0.2.1's ``load_default("train")`` load:
``optimizer.warmup_steps >= training.max_steps`` under the wsd schedule is a
:class:`ConfigWarning` that says what the schedule will do when all three
values were imported, and an error when any of them was given explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import types
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from geno_lewm_jax.errors import (
    ConfigError,
    ConfigFileNotFoundError,
    InvalidConfigError,
    MissingConfigError,
    UnknownTopLevelKeyError,
)

StateContract = Literal["l2_normalized_v2", "legacy_raw_v1"]

# The fields of the wsd warmup-vs-horizon rule (see validate).
WSD_HORIZON_FIELDS: tuple[str, ...] = ("optimizer.schedule", "optimizer.warmup_steps", "training.max_steps")


class ConfigWarning(UserWarning):
    """An imported config value the reference accepts and this project would refuse as a flag."""


def _f(default: Any, help: str) -> Any:  # noqa: A002 - mirrors absl's name
    """A dataclass field with a help text (used for flag help and --explain)."""
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return dataclasses.field(default_factory=lambda: value, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


DEFAULT_K_BUCKETS = (1, 2, 3, 4, 8, 16)
"""``training.k_buckets`` unless set: 3 fits the default K mix, whose batches have K <= 3."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Carbon state encoder (runs in torch behind ``bridge``)."""

    model_id: str = _f("HuggingFaceBio/Carbon-500M", "Hub id of the Carbon model (provenance only; weights load from model_dir).")
    revision: str = _f("main", "Model revision recorded for provenance.")
    dtype: Literal["bf16", "fp16", "fp32"] = _f("bf16", "Carbon weight and compute dtype.")
    state_layer: int = _f(20, "hidden_states index pooled into the state (0 = embeddings).")
    pool_type: Literal["centered_mean", "global_mean"] = _f("centered_mean", "Pooling of target states.")
    pool_radius: int = _f(8, "Tokens on each side of the edit locus for centred pooling.")
    normalize: bool = _f(True, "Kept for YAML compatibility; the state contract decides normalisation.")
    trust_remote_code: bool = _f(False, "Kept for YAML compatibility; the bridge never runs remote code.")
    model_dir: str = _f("", "Local Carbon checkpoint directory (config.json + safetensors).")
    state_contract: StateContract = _f(
        "l2_normalized_v2",
        "l2_normalized_v2 (default: DNA-token mean at the same locus for source and target, L2-normalised) "
        "or legacy_raw_v1 (geno-lewm 0.2.1 pooling, bit-for-bit).",
    )
    feature_cache: bool = _f(
        True,
        "Cache pooled Carbon features so a (window, locus) state is encoded once per run "
        "(in feature_cache_dir, or <run_dir>/feature_cache when that is empty).",
    )
    feature_cache_dir: str = _f("", "Directory of the pooled-feature cache; setting it turns the cache on.")
    encode_batch_size: int = _f(16, "Windows per Carbon forward.")


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
    """Action-conditioned cross-attention predictor."""

    architecture: str = _f("cross_attention", "Kept for YAML compatibility.")
    n_layers: int = _f(6, "Cross-attention blocks (alternating state->action, action->state).")
    n_heads: int = _f(8, "Attention heads.")
    d_state: int = _f(1024, "State width; must equal Carbon's hidden size.")
    d_action: int = _f(64, "Kept for YAML compatibility; the predictor reads action.d_action.")
    dtype: str = _f("bf16", "Kept for YAML compatibility (the reference never applies it).")
    d_hidden: int = _f(768, "Token width inside the predictor.")
    ffn_dim: int = _f(768, "Feed-forward width.")
    n_self_layers: int = _f(2, "Self-attention blocks after the cross blocks.")
    causal: bool = _f(False, "Step k never sees actions after k (off = reference behaviour).")
    compute_dtype: Literal["float32", "bfloat16"] = _f("float32", "Matmul dtype of the jitted step; params stay float32.")
    remat: bool = _f(
        False,
        "Recompute each scanned block's activations in the backward pass (gradient checkpointing):"
        " less memory at long K or large batch, one more forward per step.",
    )
    scan_layers: bool = _f(
        True,
        "Run same-typed blocks as one jax.lax.scan over stacked parameters (one compiled body per block"
        " type); off unrolls them into straight-line code (same numbers; XLA's cost analysis then counts"
        " every block, as the benches' FLOP figures need).",
    )


@dataclasses.dataclass(frozen=True)
class ActionConfig:
    """Edit (action) encoder."""

    d_action: int = _f(64, "Action embedding width.")
    max_len: int = _f(16, "Most edits per rollout (predictor max_actions).")
    sub_encoders: tuple[str, ...] = _f(("snv",), "Kept for YAML compatibility.")
    max_window_bp: int = _f(12288, "Base of the sinusoidal position code; rel_pos must be below it.")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Training loop, objective and run policy."""

    max_steps: int = _f(40000, "Training horizon in optimizer steps.")
    collapse_log_every_steps: int = _f(500, "Collapse-monitor cadence on validation batches.")
    loss_alpha: float = _f(1.0, "Weight of (1 - cos) in the prediction loss.")
    loss_beta: float = _f(0.1, "Weight of the squared error / D.")
    loss_gamma: float = _f(0.5, "Weight of the regulariser (training.regularizer) in phase2.")
    kl_source: Literal["targets", "predictions"] = _f("targets", "States the regulariser (KL or SIGReg) is computed on.")
    regularizer: Literal["lejepa_kl", "sigreg", "none"] = _f(
        "lejepa_kl",
        "Regulariser added as gamma * R in phase2: lejepa_kl (the reference's KL to N(0, I)), sigreg (LeJEPA's"
        " sketched isotropic Gaussian regulariser, as in LeWorldModel; directions redrawn each step from seed"
        " and step) or none. The KL is reported in every case.",
    )
    sigreg_projections: int = _f(1024, "SIGReg: random unit directions drawn each step (LeWorldModel: 1024).")
    sigreg_integration_points: int = _f(
        17, "SIGReg: trapezoid nodes on t in [0, 3] for the Epps-Pulley integral (LeJEPA, LeWorldModel: 17); >= 2."
    )
    log_every_steps: int = _f(50, "Progress-event cadence.")
    checkpoint_every_steps: int = _f(1000, "Checkpoint cadence.")
    keep_checkpoints: int = _f(3, "Latest checkpoints kept (the best one is kept too).")
    nan_policy: Literal["raise", "skip"] = _f("raise", "On a non-finite loss or gradient: raise NaNLossError, or skip the update.")
    stop_on_collapse: bool = _f(False, "Raise CollapseDetectedError when the monitor alerts.")
    validation_batches: int = _f(4, "Held-out batches fed to the collapse monitor.")
    k_buckets: tuple[int, ...] = _f(
        DEFAULT_K_BUCKETS,
        "Padded K values; one compiled step per bucket used (3 fits the default K mix, whose batches have K <= 3).",
    )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with a warmup-stable-decay schedule."""

    name: Literal["adamw", "sgd-momentum"] = _f("adamw", "Only adamw trains.")
    lr: float = _f(3.0e-4, "Peak learning rate.")
    beta1: float = _f(0.9, "Adam beta1.")
    beta2: float = _f(0.95, "Adam beta2.")
    weight_decay: float = _f(0.1, "Decoupled weight decay (matrices only).")
    grad_clip: float = _f(1.0, "Global-norm clip; 0 disables.")
    warmup_steps: int = _f(1000, "Linear warmup steps.")
    schedule: Literal["wsd", "cosine", "constant"] = _f("wsd", "Learning-rate schedule after warmup.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Dataset snapshot and tuple stream."""

    corpus_id: str = _f("HuggingFaceBio/carbon-pretraining-corpus", "Kept for YAML compatibility.")
    corpus_revision: str = _f("main", "Kept for YAML compatibility.")
    batch_size: int = _f(8, "Global batch size in tuples.")
    num_workers: int = _f(0, "Kept for YAML compatibility.")
    shuffle_buffer: int = _f(8192, "Kept for YAML compatibility (the stream shuffles per epoch).")
    dataset_dir: str = _f("", "GenoLeWM dataset snapshot directory.")
    stream: Literal["kstep", "legacy"] = _f(
        "kstep", "kstep (default: split-aware, shuffled, K-step rollouts) or legacy (geno-lewm 0.2.1 order, K=1)."
    )
    prefetch_batches: int = _f(2, "Batches the background Carbon producer encodes ahead.")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings (carried for YAML compatibility)."""

    benchmarks: tuple[str, ...] = _f(("clinvar_coding", "clinvar_noncoding", "rollout"), "Eval benchmarks.")
    smoke_variants: int = _f(1000, "Smoke-eval variant count.")


@dataclasses.dataclass(frozen=True)
class ObservabilityConfig:
    """Logging settings and where the run's curves go (train.log always; TensorBoard, W&B)."""

    log_level: Literal["debug", "info", "warn", "error"] = _f("info", "Console log level.")
    redaction_strict: bool = _f(True, "Kept for YAML compatibility.")
    tensorboard: bool = _f(True, "Write TensorBoard event files under <run_dir>/tb/ (needs tensorboardX).")
    wandb_project: str | None = _f(None, "Stream the curves and the config to this W&B project (needs wandb); unset: no W&B.")
    wandb_entity: str | None = _f(None, "W&B entity (user or team); unset: your W&B default.")
    wandb_run_name: str | None = _f(None, "W&B run display name; unset: run_id.")
    wandb_mode: Literal["online", "offline", "disabled"] = _f(
        "online", "online streams to the W&B server; offline writes <run_dir>/wandb/ for `wandb sync`; disabled turns W&B off."
    )
    profile_steps: str = _f(
        "", "A:B writes a jax.profiler trace of steps A..B into <run_dir>/profile (TensorBoard/Perfetto); empty: none."
    )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the job runs."""

    backend: Literal["onnx", "coreml", "gguf", "torch"] = _f("torch", "Kept for YAML compatibility.")
    device: Literal["cpu", "cuda", "mps", "auto"] = _f("cuda", "Accelerator the run expects; cpu allows a CPU-only run.")
    run_dir: str = _f("runs/carbon-500m", "Run directory (artifacts, logs, checkpoints).")
    resume: bool = _f(False, "Require a checkpoint to resume from (resume is automatic when one exists).")
    allow_config_change: bool = _f(False, "Resume even if the config fingerprint changed.")
    param_sharding: Literal["replicated", "fsdp"] = _f("replicated", "Parameter/optimizer-state layout over the data axis.")
    grad_reduction: Literal["all_reduce", "ordered"] = _f(
        "all_reduce",
        "How the batch's gradients are summed: XLA's all-reduce (its order follows the device and process"
        " layout), or a fixed-order sum over reduction_groups batch groups that makes a step bitwise"
        " independent of the layout (each device gathers all groups' gradients: G copies in memory).",
    )
    reduction_groups: int = _f(
        0,
        "Batch groups summed in a fixed order under grad_reduction=ordered; 0 = one per device. Keep it"
        " fixed (a multiple of every device count used) to resume bitwise on another device count.",
    )
    coordinator_address: str = _f("", "host:port of process 0 for multi-host runs.")
    num_processes: int = _f(1, "Processes in a multi-host run.")
    process_id: int = _f(0, "This process's index in a multi-host run.")
    bootstrap_missing: bool = _f(False, "Create the stand-in Carbon and synthetic snapshot when missing (embedded default).")
    standin_embeddings: Literal["random", "compositional"] = _f(
        "random",
        "6-mer embeddings of the stand-in Carbon that bootstrap_missing creates: random, or compositional"
        " (built from the 6-mer's bases, so an edit's effect on a state has structure a predictor can learn).",
    )
    compilation_cache_dir: str = _f(
        "~/.cache/geno_lewm_jax/xla",
        "Persistent XLA compilation cache, reused across runs (on GPUs XLA's autotuning results go with it);"
        " empty disables it.",
    )
    torch_cpu_threads: int = _f(0, "Threads for Carbon on CPU; 0 = half the cores, leaving the rest to XLA.")


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run's settings."""

    run_id: str = _f("carbon-500m-release", "Run identity recorded in artifacts and checkpoints.")
    seed: int = _f(271828, "Base seed: data=seed, predictor init=seed+1.")
    sweep: str = _f(
        "",
        "Train variants in one vmapped step: field:v1,v2,... over a shape-keeping setting (seed,"
        " optimizer.lr, optimizer.weight_decay, optimizer.grad_clip, optimizer.warmup_steps,"
        " training.loss_alpha/beta/gamma, gamma weighting the regulariser); ';' between two such lists"
        " trains their product. A swept"
        " seed varies the model init only; the data stream keeps --seed. Empty: one model.",
    )
    phase: Literal["phase1", "phase2"] = _f("phase2", "phase1: prediction loss; phase2: adds gamma * KL.")
    deterministic: bool = _f(True, "Deterministic kernels (XLA and torch).")
    schema_version: str = _f("1.0.0", "Config schema version.")
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    predictor: PredictorConfig = dataclasses.field(default_factory=PredictorConfig)
    action: ActionConfig = dataclasses.field(default_factory=ActionConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    observability: ObservabilityConfig = dataclasses.field(default_factory=ObservabilityConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def replace(self, overrides: Mapping[str, Any]) -> "Config":
        """A validated copy with dotted-name overrides applied (overrides count as explicit values)."""
        return from_dict(set_dotted(to_dict(self), overrides), explicit=tuple(overrides))


SECTIONS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default_factory)  # type: ignore[arg-type]
)


# --- schema introspection -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One leaf of the schema: its dotted name, type, default and help."""

    dotted: str
    annotation: Any
    default: Any
    help: str


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def iter_fields() -> tuple[FieldSpec, ...]:
    """Every leaf field of the schema, in declaration order."""
    out: list[FieldSpec] = []
    top_hints = _hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in SECTIONS:
            section_cls = top_hints[f.name]
            hints = _hints(section_cls)
            defaults = section_cls()
            for sf in dataclasses.fields(section_cls):
                out.append(FieldSpec(f"{f.name}.{sf.name}", hints[sf.name], getattr(defaults, sf.name), sf.metadata.get("help", "")))
        else:
            out.append(FieldSpec(f.name, top_hints[f.name], getattr(Config(), f.name), f.metadata.get("help", "")))
    return tuple(out)


def describe_field(dotted: str) -> dict[str, Any]:
    """Name, type, default and help of one field (the ``--explain`` view)."""
    for spec in iter_fields():
        if spec.dotted == dotted:
            return {"name": spec.dotted, "type": _type_name(spec.annotation), "default": spec.default, "doc": spec.help}
    raise MissingConfigError(f"unknown config field {dotted!r}", details={"field": dotted})


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(annotation)))
    if origin is tuple:
        return f"list of {get_args(annotation)[0].__name__}"
    if origin in (Union, types.UnionType):
        return " | ".join("None" if a is type(None) else a.__name__ for a in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


# --- coercion (the reference loader's rules) ----------------------------------------------------
def coerce(value: Any, annotation: Any, *, path: str) -> Any:
    """Coerce a YAML/override value to the field type, or raise naming ``path``.

    bool must be a real bool; int rejects bool and float; float accepts int;
    tuples accept lists; Literal checks membership; ``X | None`` tries each arm.
    """
    origin = get_origin(annotation)

    def bad(expected: str) -> InvalidConfigError:
        return InvalidConfigError(
            f"{path}: expected {expected}, got {type(value).__name__} ({value!r})",
            details={"field": path, "value": repr(value), "expected": expected},
            remediation=f"Set {path} to a value of type {expected}.",
        )

    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise bad("bool")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("int")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad("float")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise bad("str")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad("list")
        item = get_args(annotation)[0]
        return tuple(coerce(v, item, path=f"{path}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        allowed = get_args(annotation)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        raise InvalidConfigError(
            f"{path}: {value!r} is not one of {', '.join(map(str, allowed))}",
            details={"field": path, "value": repr(value), "allowed": list(allowed)},
            remediation=f"Set {path} to one of: {', '.join(map(str, allowed))}.",
        )
    if origin in (Union, types.UnionType):
        arms = get_args(annotation)
        if value is None and type(None) in arms:
            return None
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, path=path)
            except InvalidConfigError:
                continue
        raise bad(_type_name(annotation))
    raise ConfigError(f"{path}: unsupported annotation {annotation!r}")  # a schema bug, not user input


# --- dict <-> config ----------------------------------------------------------------------------
def from_dict(
    payload: Mapping[str, Any], *, validate_ranges: bool = True, explicit: Collection[str] = ()
) -> Config:
    """Build a validated config from a nested mapping (closed schema, defaults for what is absent).

    ``explicit`` names the dotted fields whose values were given as flags or
    overrides rather than imported (see :func:`validate`).
    """
    if not isinstance(payload, Mapping):
        raise InvalidConfigError(
            f"config payload must be a mapping, got {type(payload).__name__}", details={"field": "<root>"}
        )
    top_hints = _hints(Config)
    known = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(payload) - set(known))
    if unknown:
        raise UnknownTopLevelKeyError(
            f"unknown config key {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
            details={"field": unknown[0], "unknown": unknown, "known": known},
            remediation="Remove the key or check its spelling against the schema.",
        )
    kwargs: dict[str, Any] = {}
    for name in known:
        if name not in payload:
            continue
        value = payload[name]
        if name in SECTIONS:
            kwargs[name] = _section_from_dict(top_hints[name], value, name)
        else:
            kwargs[name] = coerce(value, top_hints[name], path=name)
    config = Config(**kwargs)
    if validate_ranges:
        validate(config, explicit=explicit)
    return config


def _section_from_dict(cls: type, value: Any, section: str) -> Any:
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise InvalidConfigError(
            f"{section}: section must be a mapping, got {type(value).__name__}", details={"field": section}
        )
    hints = _hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise InvalidConfigError(
            f"unknown config key '{section}.{unknown[0]}'",
            details={"field": f"{section}.{unknown[0]}", "unknown": unknown, "known": known},
            remediation=f"Remove the key or use one of: {', '.join(known)}.",
        )
    return cls(**{k: coerce(v, hints[k], path=f"{section}.{k}") for k, v in value.items()})


def to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples become lists), suitable for YAML and JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = {sf.name: plain(getattr(v, sf.name)) for sf in dataclasses.fields(v)}
        else:
            out[f.name] = plain(v)
    return out


def get_dotted(config: Config, dotted: str) -> Any:
    obj: Any = config
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def set_dotted(payload: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``{"section.field": value}`` overrides to a nested dict (unknown names raise)."""
    known = {s.dotted for s in iter_fields()}
    for dotted, value in overrides.items():
        if dotted not in known:
            raise InvalidConfigError(
                f"unknown config key {dotted!r}",
                details={"field": dotted},
                remediation="Use a dotted name such as predictor.d_state.",
            )
        parts = dotted.split(".")
        node = payload
        if len(parts) == 2:
            if not isinstance(node.get(parts[0]), dict):
                node[parts[0]] = {}
            node = node[parts[0]]
        node[parts[-1]] = value
    return payload


def fingerprint(config: Config, *, exclude: tuple[str, ...] = ()) -> str:
    """sha256 of the canonical JSON of the config, minus ``exclude`` dotted names."""
    flat = {s.dotted: get_dotted(config, s.dotted) for s in iter_fields() if s.dotted not in exclude}
    blob = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}, sort_keys=True)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted names whose values differ between two configs."""
    return {
        s.dotted: (get_dotted(a, s.dotted), get_dotted(b, s.dotted))
        for s in iter_fields()
        if get_dotted(a, s.dotted) != get_dotted(b, s.dotted)
    }


# --- range and cross-field validation -----------------------------------------------------------
_POSITIVE_INTS = (
    "encoder.encode_batch_size",
    "predictor.n_layers",
    "predictor.n_heads",
    "predictor.d_state",
    "predictor.d_hidden",
    "predictor.ffn_dim",
    "action.d_action",
    "action.max_len",
    "action.max_window_bp",
    "training.max_steps",
    "training.collapse_log_every_steps",
    "training.log_every_steps",
    "training.checkpoint_every_steps",
    "training.keep_checkpoints",
    "training.sigreg_projections",
    "data.batch_size",
    "runtime.num_processes",
)
_NON_NEGATIVE_INTS = (
    "seed",
    "encoder.pool_radius",
    "predictor.n_self_layers",
    "optimizer.warmup_steps",
    "training.validation_batches",
    "data.num_workers",
    "data.shuffle_buffer",
    "data.prefetch_batches",
    "eval.smoke_variants",
    "runtime.process_id",
    "runtime.torch_cpu_threads",
    "runtime.reduction_groups",
)
_NON_NEGATIVE_FLOATS = (
    "training.loss_alpha",
    "training.loss_beta",
    "training.loss_gamma",
    "optimizer.weight_decay",
    "optimizer.grad_clip",
)


def _unfinished_warmup(config: Config) -> str:
    """What the wsd schedule does when its warmup is at least the whole run."""
    steps, warmup = config.training.max_steps, config.optimizer.warmup_steps
    return (
        f"optimizer.warmup_steps={warmup} >= training.max_steps={steps} under the wsd schedule: the learning"
        f" rate rises linearly for all {steps} steps to {steps / warmup:.4g} x optimizer.lr at the last step"
        f" ({config.optimizer.lr * steps / warmup:.4g}), with no stable or decay phase; give"
        " optimizer.warmup_steps < training.max_steps for the full schedule"
    )


def _range_error(field: str, value: Any, rule: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"{field}={value!r} is out of range: {rule}",
        details={"field": field, "value": repr(value), "rule": rule},
        remediation=f"Set {field} so that {rule}.",
    )


MAX_STEPS_LIMIT = 2**31 - 1
"""The largest training horizon: optax's step count and the jitted schedule's step are int32."""


def feature_cache_path(config: Config) -> Path | None:
    """Where the pooled-feature cache lives, or None when the run uses none."""
    if config.encoder.feature_cache_dir:
        return Path(config.encoder.feature_cache_dir).expanduser()
    if config.encoder.feature_cache:
        return Path(config.runtime.run_dir).expanduser() / "feature_cache"
    return None


def parse_profile_steps(text: str) -> tuple[int, int] | None:
    """``"A:B"`` -> (A, B) with 1 <= A <= B; empty -> None."""
    if not text:
        return None
    first, sep, last = text.partition(":")
    try:
        a, b = int(first), int(last if sep else first)
    except ValueError:
        a, b = 0, -1
    if not 1 <= a <= b:
        raise _range_error("observability.profile_steps", text, "it must be A:B with 1 <= A <= B (steps to trace)")
    return a, b


def validate(config: Config, *, explicit: Collection[str] = ()) -> Config:
    """Range and cross-field checks; the first violation raises naming its field.

    The wsd warmup rule (``warmup_steps < max_steps``) raises only when one of
    :data:`WSD_HORIZON_FIELDS` is in ``explicit`` (given as a flag or an
    override); for imported values it is a :class:`ConfigWarning`, as the
    reference accepts them: the warmup then never ends.
    """
    for name in _POSITIVE_INTS:
        if get_dotted(config, name) <= 0:
            raise _range_error(name, get_dotted(config, name), "it must be a positive integer")
    if config.training.max_steps > MAX_STEPS_LIMIT:
        raise _range_error(
            "training.max_steps",
            config.training.max_steps,
            f"it must be at most {MAX_STEPS_LIMIT} (the optimizer's int32 step count)",
        )
    for name in _NON_NEGATIVE_INTS:
        if get_dotted(config, name) < 0:
            raise _range_error(name, get_dotted(config, name), "it must be a non-negative integer")
    for name in _NON_NEGATIVE_FLOATS:
        v = get_dotted(config, name)
        if not math.isfinite(v) or v < 0:
            raise _range_error(name, v, "it must be a finite non-negative number")
    lr = config.optimizer.lr
    if not math.isfinite(lr) or lr <= 0:
        raise _range_error("optimizer.lr", lr, "it must be a finite positive number")
    for name in ("optimizer.beta1", "optimizer.beta2"):
        v = get_dotted(config, name)
        if not (0.0 <= v < 1.0):
            raise _range_error(name, v, "0 <= beta < 1")
    if config.predictor.d_hidden % config.predictor.n_heads:
        raise _range_error(
            "predictor.d_hidden",
            config.predictor.d_hidden,
            f"it must be divisible by predictor.n_heads={config.predictor.n_heads}",
        )
    if config.optimizer.name != "adamw":
        raise _range_error("optimizer.name", config.optimizer.name, "only adamw is supported for training")
    if config.optimizer.schedule == "wsd" and config.training.max_steps <= config.optimizer.warmup_steps:
        if set(explicit) & set(WSD_HORIZON_FIELDS):
            raise _range_error(
                "optimizer.warmup_steps",
                config.optimizer.warmup_steps,
                f"the wsd schedule needs warmup_steps < training.max_steps={config.training.max_steps}",
            )
        warnings.warn(_unfinished_warmup(config), ConfigWarning, stacklevel=3)
    if config.training.sigreg_integration_points < 2:
        raise _range_error(
            "training.sigreg_integration_points",
            config.training.sigreg_integration_points,
            "the trapezoid rule needs at least 2 nodes",
        )
    buckets = config.training.k_buckets
    if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] < 1:
        raise _range_error("training.k_buckets", list(buckets), "a non-empty, strictly increasing list of positive ints")
    if buckets[-1] < config.action.max_len:
        raise _range_error(
            "training.k_buckets", list(buckets), f"the largest bucket must be >= action.max_len={config.action.max_len}"
        )
    if config.runtime.process_id >= config.runtime.num_processes:
        raise _range_error(
            "runtime.process_id", config.runtime.process_id, f"it must be < runtime.num_processes={config.runtime.num_processes}"
        )
    if config.observability.profile_steps:
        parse_profile_steps(config.observability.profile_steps)
    if not config.run_id.strip():
        raise _range_error("run_id", config.run_id, "it must be a non-empty string")
    if config.sweep:
        from geno_lewm_jax.sweep.spec import sweep_spec

        sweep_spec(config)  # every variant is a valid config of its own
    return config


# --- YAML and flagfile loading ------------------------------------------------------------------
def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a GenoLeWM training YAML into a plain mapping (empty file = all defaults)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigFileNotFoundError(
            f"config file not found: {p}",
            details={"path": str(p), "field": "config_yaml"},
            remediation="Check the --config_yaml path.",
        )
    try:
        payload = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidConfigError(f"{p}: not valid YAML ({exc.__class__.__name__})", details={"path": str(p)}) from None
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidConfigError(f"{p}: top level must be a mapping", details={"path": str(p)})
    return dict(payload)


def write_yaml(config: Config, path: str | os.PathLike[str]) -> Path:
    """Write the effective config as block YAML with sorted keys, atomically."""
    import yaml

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(to_dict(config), sort_keys=True, default_flow_style=False, allow_unicode=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p.resolve()


def load_config(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """The frozen config from a flagfile or GenoLeWM YAML, then dotted overrides.

    ``path=None`` gives the release-recipe defaults. A path ending in ``.yaml``
    or ``.yml`` is read as GenoLeWM YAML; anything else as an absl flagfile.
    """
    payload: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if p.suffix in (".yaml", ".yml"):
            payload = read_yaml(p)
        else:
            from geno_lewm_jax import flags as flag_defs

            payload = to_dict(flag_defs.config_from_argv(["load_config", f"--flagfile={p}"]))
    if overrides:
        payload = set_dotted(to_dict(from_dict(payload, validate_ranges=False)), overrides)
    return from_dict(payload, explicit=tuple(overrides or ()))


__all__ = [
    "ActionConfig",
    "Config",
    "ConfigWarning",
    "DataConfig",
    "EncoderConfig",
    "EvalConfig",
    "FieldSpec",
    "ObservabilityConfig",
    "OptimizerConfig",
    "PredictorConfig",
    "RuntimeConfig",
    "SECTIONS",
    "TrainingConfig",
    "WSD_HORIZON_FIELDS",
    "coerce",
    "describe_field",
    "diff",
    "fingerprint",
    "from_dict",
    "get_dotted",
    "iter_fields",
    "load_config",
    "read_yaml",
    "set_dotted",
    "to_dict",
    "validate",
    "write_yaml",
]
