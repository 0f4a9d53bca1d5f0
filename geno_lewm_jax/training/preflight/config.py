"""The config probe of the training preflight.

Two inputs: the optional config file (YAML or absl flagfile) the job was
started from, and the frozen :class:`~geno_lewm_jax.config.Config` it will run
with. The file gets the reference's file checks (``training_config.missing``,
``.invalid_yaml``, ``.invalid``, ``.schema_invalid`` and the section-missing
warnings, YAML only); the object gets the schema round trip, the horizon
checks and the two checks against the Carbon model's shape. Object findings
name the dotted config field as their path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geno_lewm_jax import config as cfg
from geno_lewm_jax.errors import GenoLeWMError
from geno_lewm_jax.training.preflight.report import FileHasher, IssueLog, is_positive_int, public_ref

CONFIG_SECTIONS_EXPECTED = ("encoder", "data", "predictor", "action", "training", "optimizer")


def inspect_training_config(
    config: cfg.Config,
    config_path: Path | None,
    log: IssueLog,
    hasher: FileHasher,
    *,
    hidden_size: int | None,
    num_layers: int | None,
) -> dict[str, object]:
    """The ``training_config`` section: the config file (if any), then checks on the config object."""
    section: dict[str, object] = {
        "path": None if config_path is None else public_ref(config_path),
        "sha256": None,
        "size_bytes": None,
        "top_level_keys": [],
        "resolved": cfg.to_dict(config),
    }
    if config_path is not None:
        _inspect_config_file(config_path, section, log, hasher)
    findings = _horizon_findings(config)
    flagged = {field for _, field, _ in findings}
    try:  # explicit: the wsd horizon (a finding above) raises here and is skipped, instead of warning again
        cfg.from_dict(cfg.to_dict(config), explicit=cfg.WSD_HORIZON_FIELDS)
    except GenoLeWMError as exc:
        field = str(exc.details.get("field", "config"))
        if field not in flagged:
            log.error("training_config.schema_invalid", field, exc.message or str(exc))
    for code, field, message in findings:
        log.error(code, field, message)
    d_state = _dotted(config, "predictor.d_state")
    if hidden_size is not None and d_state != hidden_size:
        log.error(
            "training_config.predictor.d_state_mismatch",
            "predictor.d_state",
            f"predictor.d_state={d_state!r} but the Carbon model's hidden_size is {hidden_size}",
        )
    layer = _dotted(config, "encoder.state_layer")
    if num_layers is not None and not (isinstance(layer, int) and -(num_layers + 1) <= layer <= num_layers):
        log.error(
            "training_config.encoder.state_layer_out_of_range",
            "encoder.state_layer",
            f"encoder.state_layer={layer!r} does not index hidden_states of a {num_layers}-layer model "
            f"(allowed {-(num_layers + 1)}..{num_layers})",
        )
    return section


def _inspect_config_file(path: Path, section: dict[str, object], log: IssueLog, hasher: FileHasher) -> None:
    where = public_ref(path)
    if not path.is_file():
        log.error("training_config.missing", where, "the config file does not exist")
        return
    section["sha256"] = hasher.digest(path)
    section["size_bytes"] = path.stat().st_size
    if path.suffix not in (".yaml", ".yml"):
        try:
            cfg.load_config(path)
        except GenoLeWMError as exc:
            log.error("training_config.schema_invalid", where, exc.message or str(exc))
        return
    import yaml

    try:
        payload = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        log.error("training_config.invalid_yaml", where, f"not valid YAML: {exc}")
        return
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        log.error("training_config.invalid", where, f"the YAML top level must be a mapping, not {type(payload).__name__}")
        return
    section["top_level_keys"] = sorted(str(key) for key in payload)
    try:
        cfg.from_dict(payload, explicit=cfg.WSD_HORIZON_FIELDS)  # preflight keeps refusing a wsd warmup past the run
    except GenoLeWMError as exc:
        log.error("training_config.schema_invalid", where, exc.message or str(exc))
    for key in CONFIG_SECTIONS_EXPECTED:
        if key not in payload:
            log.warning(f"training_config.{key}.missing", where, f"the file has no {key} section; defaults apply")


def _horizon_findings(config: cfg.Config) -> list[tuple[str, str, str]]:
    """(code, dotted field, message) for a training horizon that cannot run."""
    max_steps = _dotted(config, "training.max_steps")
    if not is_positive_int(max_steps):
        return [("training_config.training.max_steps_invalid", "training.max_steps", f"training.max_steps={max_steps!r} is not a positive integer")]
    found = []
    every = _dotted(config, "training.collapse_log_every_steps")
    if not is_positive_int(every):
        found.append(
            (
                "training_config.training.collapse_log_every_steps_invalid",
                "training.collapse_log_every_steps",
                f"training.collapse_log_every_steps={every!r} is not a positive integer",
            )
        )
    warmup = _dotted(config, "optimizer.warmup_steps")
    if _dotted(config, "optimizer.schedule") == "wsd" and isinstance(warmup, int) and max_steps <= warmup:
        found.append(
            (
                "training_config.training.max_steps_wsd_warmup",
                "optimizer.warmup_steps",
                f"the wsd schedule needs training.max_steps={max_steps} > optimizer.warmup_steps={warmup}",
            )
        )
    return found


def _dotted(config: cfg.Config, dotted: str) -> Any:
    try:
        return cfg.get_dotted(config, dotted)
    except AttributeError:
        return None
