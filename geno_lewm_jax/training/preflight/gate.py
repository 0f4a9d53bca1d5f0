"""The preflight gate: build the report from the probes, write it, and stop a run that is not ok.

:func:`build_training_preflight_report` inspects, in this order, the dataset
snapshot, the Carbon model directory, the config, the run directory, the
accelerator and the dependencies, and collects issues; ``ok`` is true iff no
issue has severity ``error`` (warnings never block).
:func:`write_training_preflight_report` also writes
``training_preflight_report.json`` (strict JSON, sorted keys, 2-space indent,
trailing newline); :func:`run_training_preflight` is what ``main`` calls: it
prints each issue on one line and raises ``InputError`` when the report is
not ok. The report keeps geno-lewm 0.2.1's schema, keys, nesting, path policy
and issue codes. What differs, on purpose:

* The request takes the frozen :class:`~geno_lewm_jax.config.Config` itself
  (``config``) plus an optional ``config_path`` (YAML or absl flagfile) instead
  of a YAML path. ``training_config.resolved`` is always the config the job
  will run with; ``path``/``sha256``/``size_bytes``/``top_level_keys`` describe
  ``config_path`` when one is given (an empty YAML file is all defaults here,
  as in :func:`~geno_lewm_jax.config.load_config`, not ``training_config.invalid``).
  ``training_config.schema_invalid`` also covers a config object that fails
  the schema round trip (hand-built dataclasses skip validation).
* New config checks against the Carbon ``config.json``:
  ``training_config.predictor.d_state_mismatch`` (``predictor.d_state`` must be
  ``hidden_size``) and ``training_config.encoder.state_layer_out_of_range``
  (``encoder.state_layer`` must index ``hidden_states``: ``-(L+1)..L`` for
  ``num_hidden_layers = L``); an unreadable or incomplete ``config.json`` is
  ``carbon.config_invalid``. The ``carbon`` section gains ``hidden_size`` and
  ``num_hidden_layers``.
* The accelerator probe asks JAX (and torch for ``cuda``); ``runtime.device=cpu``
  is a valid CPU run and ``auto`` takes what is there (see
  :mod:`~geno_lewm_jax.training.preflight.runtime`). A ``cuda`` run that only
  one framework can put on the GPU gets a warning
  (``training.cuda.jax_no_gpu`` / ``training.cuda.torch_no_gpu``).
* Issue paths are public: a file path is relative to its probed directory's
  public name (``snapshot/SHA256SUMS``), never absolute; config findings name
  the dotted field (``predictor.d_state``), dependency findings the import.
* The fixture heuristic matches whole words (``latest`` is no longer ``test``).
* Every file is hashed at most once. The Carbon weights are hashed in full by
  default (``weights_identity="sha256"``, about 2 s/GB); ``"stat"`` records
  size and mtime only (``sha256`` is null), for multi-GB checkpoints whose
  digest the encoder identity computes anyway.
* The run-dir probe is read-only: it creates nothing (the reference made the
  directory) and reports ``run_dir.not_writable`` instead of raising; the
  section gains ``writable``. Only the write functions create files.
* A batch whose estimated memory exceeds what the host (or, on a GPU, one
  device) has is ``training_config.data.batch_size_too_large`` (see
  :mod:`~geno_lewm_jax.training.preflight.memory`), so it is refused before
  the stream materialises it.
* ``min_accelerator_memory_gb`` (GiB, like the reference's ``min_cuda_vram_gb``)
  may be 0 for no minimum; a negative or non-numeric value is an
  ``InputError`` instead of a silent fallback to 40.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal, TextIO

from geno_lewm_jax import config as cfg
from geno_lewm_jax.errors import InputError, InvalidConfigError
from geno_lewm_jax.run_dir import write_json
from geno_lewm_jax.training.preflight.carbon import inspect_carbon_model_dir
from geno_lewm_jax.training.preflight.config import inspect_training_config
from geno_lewm_jax.training.preflight.dataset import inspect_dataset
from geno_lewm_jax.training.preflight.memory import inspect_batch_memory
from geno_lewm_jax.training.preflight.report import (
    GENERATED_BY,
    REPORT_NAME,
    SCHEMA_VERSION,
    AcceleratorProbe,
    DependencyProbe,
    FileHasher,
    IssueLog,
    TrainingPreflightIssue,
    TrainingPreflightReport,
    public_ref,
)
from geno_lewm_jax.training.preflight.runtime import (
    MIN_CUDA_VRAM_GB,
    REQUIRED_TRAINING_MODULES,
    min_memory_bytes,
    probe_accelerator,
    probe_dependency,
)

DependencyProbeFn = Callable[[str, bool], DependencyProbe]
AcceleratorProbeFn = Callable[[str | None, bool, int], AcceleratorProbe]


@dataclass(frozen=True, slots=True)
class TrainingPreflightRequest:
    """What to check: three directories, the config, and how strict to be."""

    dataset_dir: Path
    carbon_model_dir: Path
    run_dir: Path
    config: cfg.Config
    config_path: Path | None = None
    allow_fixture_dataset: bool = False
    require_native_runtime: bool = True
    require_accelerator: bool = True
    min_accelerator_memory_gb: float = MIN_CUDA_VRAM_GB
    weights_identity: Literal["sha256", "stat"] = "sha256"

    def __post_init__(self) -> None:
        for name in ("dataset_dir", "carbon_model_dir", "run_dir", "config_path"):
            value = getattr(self, name)
            if value is None and name == "config_path":
                continue
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                raise InputError(
                    f"TrainingPreflightRequest.{name} must be a non-empty path, got {value!r}",
                    details={"field": name, "value": repr(value)},
                )
            object.__setattr__(self, name, Path(value))
        if not isinstance(self.config, cfg.Config):
            raise InputError(
                f"TrainingPreflightRequest.config must be a geno_lewm_jax.config.Config, got {type(self.config).__name__}",
                details={"field": "config"},
                remediation="Build it with geno_lewm_jax.config.load_config(...).",
            )
        for name in ("allow_fixture_dataset", "require_native_runtime", "require_accelerator"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"TrainingPreflightRequest.{name} must be a bool", details={"field": name})
        gb = self.min_accelerator_memory_gb
        if isinstance(gb, bool) or not isinstance(gb, (int, float)) or not math.isfinite(gb) or gb < 0:
            raise InputError(
                f"TrainingPreflightRequest.min_accelerator_memory_gb must be a finite number >= 0 (GiB), got {gb!r}",
                details={"field": "min_accelerator_memory_gb", "value": repr(gb)},
            )
        if self.weights_identity not in ("sha256", "stat"):
            raise InputError(
                f"TrainingPreflightRequest.weights_identity must be 'sha256' or 'stat', got {self.weights_identity!r}",
                details={"field": "weights_identity"},
            )

    @classmethod
    def from_config(cls, config: cfg.Config, *, config_path: str | os.PathLike[str] | None = None, **options: Any) -> "TrainingPreflightRequest":
        """The request for a job: directories from ``data.dataset_dir``, ``encoder.model_dir``, ``runtime.run_dir``."""
        paths = {}
        for key, dotted in (
            ("dataset_dir", "data.dataset_dir"),
            ("carbon_model_dir", "encoder.model_dir"),
            ("run_dir", "runtime.run_dir"),
        ):
            value = cfg.get_dotted(config, dotted)
            if not isinstance(value, str) or not value.strip():
                raise InvalidConfigError(
                    f"{dotted} is empty; the training preflight needs it",
                    details={"field": dotted},
                    remediation=f"Set --{dotted.rsplit('.', 1)[-1]} (config field {dotted}).",
                )
            paths[key] = Path(value)
        return cls(config=config, config_path=None if config_path is None else Path(config_path), **paths, **options)


# --- entry points ------------------------------------------------------------------------------
def build_training_preflight_report(
    request: TrainingPreflightRequest,
    *,
    generated_at: str | None = None,
    dependency_probe: DependencyProbeFn | None = None,
    accelerator_probe: AcceleratorProbeFn | None = None,
) -> TrainingPreflightReport:
    """Inspect everything the request names; no file is created or changed."""
    log = IssueLog()
    hasher = FileHasher()
    dataset = inspect_dataset(request.dataset_dir, allow_fixture_dataset=request.allow_fixture_dataset, log=log, hasher=hasher)
    carbon = inspect_carbon_model_dir(request.carbon_model_dir, request.weights_identity, log, hasher)
    training_config = inspect_training_config(
        request.config, request.config_path, log, hasher, hidden_size=carbon["hidden_size"], num_layers=carbon["num_hidden_layers"]
    )
    run_dir = inspect_run_dir(request.run_dir, log)
    device = getattr(getattr(request.config, "runtime", None), "device", None)
    accelerator = (accelerator_probe or probe_accelerator)(
        device if isinstance(device, str) else None,
        request.require_accelerator,
        min_memory_bytes(request.min_accelerator_memory_gb),
    )
    dependencies = tuple(
        (dependency_probe or probe_dependency)(name, request.require_native_runtime) for name in REQUIRED_TRAINING_MODULES
    )
    _accelerator_issues(accelerator, log)
    inspect_batch_memory(request.config, request.dataset_dir, accelerator, log)
    for probe in dependencies:
        if probe.required and not probe.available:
            log.error("training.dependency_unavailable", probe.import_name, probe.reason)
    snapshot_id = dataset.get("snapshot_id")
    return TrainingPreflightReport(
        schema_version=SCHEMA_VERSION,
        generated_by=GENERATED_BY,
        generated_at=_utc_now() if generated_at is None else generated_at,
        ok=not any(issue.severity == "error" for issue in log.issues),
        dataset_snapshot_id=snapshot_id if isinstance(snapshot_id, str) else None,
        training_config=training_config,
        run_dir=run_dir,
        dataset=dataset,
        carbon=carbon,
        accelerator=accelerator,
        dependencies=dependencies,
        issues=tuple(log.issues),
    )


def write_training_preflight_report(
    request: TrainingPreflightRequest,
    output: str | os.PathLike[str] | None = None,
    *,
    generated_at: str | None = None,
    dependency_probe: DependencyProbeFn | None = None,
    accelerator_probe: AcceleratorProbeFn | None = None,
) -> TrainingPreflightReport:
    """Build the report and write it to ``output`` (default ``run_dir/training_preflight_report.json``)."""
    report = build_training_preflight_report(
        request, generated_at=generated_at, dependency_probe=dependency_probe, accelerator_probe=accelerator_probe
    )
    save_report(report, request.run_dir / REPORT_NAME if output is None else Path(output))
    return report


def save_report(report: TrainingPreflightReport, path: Path) -> Path:
    """Write the report atomically; a path that cannot be written is an InputError naming it."""
    try:
        return write_json(path, report.to_dict())
    except OSError as exc:
        raise InputError(
            f"cannot write the preflight report to {path}: {exc.strerror or exc}",
            details={"field": "output", "path": str(path)},
            remediation="Choose a run directory (or output path) you can write to.",
        ) from None


def run_training_preflight(
    config: cfg.Config,
    *,
    config_path: str | os.PathLike[str] | None = None,
    stream: TextIO | None = None,
    dependency_probe: DependencyProbeFn | None = None,
    accelerator_probe: AcceleratorProbeFn | None = None,
    write: bool = True,
    **options: Any,
) -> TrainingPreflightReport:
    """The main job's gate: print each issue on one line; raise unless ok, else write the report.

    A failing preflight writes nothing, so the run dir is left as it was. With
    ``write=False`` the caller writes the report (the main job does, once it has
    also checked the run dir's checkpoints).
    """
    request = TrainingPreflightRequest.from_config(config, config_path=config_path, **options)
    report = build_training_preflight_report(request, dependency_probe=dependency_probe, accelerator_probe=accelerator_probe)
    out = sys.stderr if stream is None else stream
    for issue in report.issues:
        print(issue.one_line(), file=out)
    if not report.ok:
        # A failed preflight leaves the run dir exactly as it was: the issues are on stderr.
        codes = [issue.code for issue in report.errors]
        named = ", ".join(f"{issue.code} ({issue.path})" for issue in report.errors)
        raise InputError(
            f"training preflight failed with {len(codes)} error(s): {named}",
            details={"codes": codes},
            remediation="Fix the preflight issues printed above, then start the run again.",
        )
    if write:
        save_report(report, request.run_dir / REPORT_NAME)
    return report


# --- run dir, accelerator ------------------------------------------------------------------------
def inspect_run_dir(run_dir: Path, log: IssueLog) -> dict[str, object]:
    """The ``run_dir`` section, by looking only: nothing is created or touched."""
    writable, why = _can_create_in(run_dir)
    if not writable:
        log.error("run_dir.not_writable", public_ref(run_dir), why)
    return {"path": public_ref(run_dir), "exists": run_dir.is_dir(), "writable": writable, "preflight_report_path": REPORT_NAME}


def _can_create_in(run_dir: Path) -> tuple[bool, str]:
    """Whether the run dir exists writable, or could be created under its nearest existing ancestor."""
    probe = run_dir.absolute()
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{public_ref(probe)} is not a directory, so the run directory cannot exist below it"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{public_ref(probe)} is not writable by this user"
    return True, "writable"


def _accelerator_issues(accelerator: AcceleratorProbe, log: IssueLog) -> None:
    if accelerator.required and not accelerator.available:
        log.error(accelerator.issue_code or "training.accelerator_unavailable", "runtime.device", accelerator.reason)
        return
    if accelerator.requested_device != "cuda" or not accelerator.available:
        return
    if accelerator.platform not in (None, "gpu"):
        log.warning(
            "training.cuda.jax_no_gpu",
            "runtime.device",
            f"only torch sees the GPU; JAX runs on {accelerator.platform}, so the predictor would train there",
        )
    if accelerator.torch_cuda_available is False:
        log.warning("training.cuda.torch_no_gpu", "runtime.device", "torch sees no CUDA GPU, so Carbon would encode on the CPU")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "MIN_CUDA_VRAM_GB",
    "REPORT_NAME",
    "REQUIRED_TRAINING_MODULES",
    "SCHEMA_VERSION",
    "AcceleratorProbe",
    "DependencyProbe",
    "TrainingPreflightIssue",
    "TrainingPreflightReport",
    "TrainingPreflightRequest",
    "build_training_preflight_report",
    "run_training_preflight",
    "save_report",
    "write_training_preflight_report",
]
