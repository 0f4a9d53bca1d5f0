"""The preflight report's value types and the helpers every probe shares.

The types serialise to the geno-lewm 0.2.1 ``training_preflight_report.json``
schema (same keys and nesting); :class:`AcceleratorProbe` carries two extra
keys (``platform``, ``torch_cuda_available``) for the JAX generalisation.
Nothing here touches the file system except :class:`FileHasher`, which reads
files to identify them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geno_lewm_jax.run_dir import public_path

REPORT_NAME = "training_preflight_report.json"
SCHEMA_VERSION = "1.0.0"
GENERATED_BY = "geno_lewm_jax.training.preflight"

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class TrainingPreflightIssue:
    """One finding; ``path`` is always a public path (never absolute) or a dotted config field."""

    severity: Severity
    code: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "path": self.path, "message": self.message}

    def one_line(self) -> str:
        """The issue as a single console line (messages such as YAML errors span lines)."""
        text = " ".join(self.message.split())
        return f"preflight {self.severity}[{self.code}] {self.path}: {text}"


@dataclass(frozen=True, slots=True)
class DependencyProbe:
    """Whether one import the training job needs can be found, and its installed version."""

    import_name: str
    package: str
    required: bool
    available: bool
    version: str | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "import_name": self.import_name,
            "package": self.package,
            "required": self.required,
            "available": self.available,
            "version": self.version,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AcceleratorProbe:
    """What the run would execute on, and whether that meets ``runtime.device``.

    ``platform`` is the JAX backend that supplied the facts ("gpu", "tpu",
    "cpu"; None when JAX saw no matching device), ``torch_cuda_available`` what
    torch reports (None when torch was not consulted or not importable).
    ``issue_code`` names the failure when ``available`` is false.
    """

    requested_device: str | None
    required: bool
    available: bool
    device_count: int
    device_name: str | None
    total_memory_bytes: int | None
    min_memory_bytes: int
    reason: str
    issue_code: str | None = None
    platform: str | None = None
    torch_cuda_available: bool | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "requested_device": self.requested_device,
            "required": self.required,
            "available": self.available,
            "device_count": self.device_count,
            "device_name": self.device_name,
            "total_memory_bytes": self.total_memory_bytes,
            "min_memory_bytes": self.min_memory_bytes,
            "reason": self.reason,
            "issue_code": self.issue_code,
            "platform": self.platform,
            "torch_cuda_available": self.torch_cuda_available,
        }


@dataclass(frozen=True, slots=True)
class TrainingPreflightReport:
    """Everything the preflight looked at, plus its issues; ``ok`` iff no issue is an error."""

    schema_version: str
    generated_by: str
    generated_at: str
    ok: bool
    dataset_snapshot_id: str | None
    training_config: dict[str, object]
    run_dir: dict[str, object]
    dataset: dict[str, object]
    carbon: dict[str, object]
    accelerator: AcceleratorProbe
    dependencies: tuple[DependencyProbe, ...]
    issues: tuple[TrainingPreflightIssue, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": self.schema_version,
            "generated_by": self.generated_by,
            "generated_at": self.generated_at,
            "ok": self.ok,
            "dataset_snapshot_id": self.dataset_snapshot_id,
            "training_config": self.training_config,
            "run_dir": self.run_dir,
            "dataset": self.dataset,
            "carbon": self.carbon,
            "accelerator": self.accelerator.to_dict(),
            "dependencies": [probe.to_dict() for probe in self.dependencies],
            "issues": [issue.to_dict() for issue in self.issues],
        }

    @property
    def errors(self) -> tuple[TrainingPreflightIssue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == "error")


@dataclass
class IssueLog:
    """Collects issues in the order the probes find them."""

    issues: list[TrainingPreflightIssue] = field(default_factory=list)

    def error(self, code: str, path: str, message: str) -> None:
        self.issues.append(TrainingPreflightIssue("error", code, path, message))

    def warning(self, code: str, path: str, message: str) -> None:
        self.issues.append(TrainingPreflightIssue("warning", code, path, message))


def public_ref(path: Path | str) -> str:
    """The report's path policy: relative paths without ``..`` as POSIX text, else the final name."""
    return public_path(path)


def public_child(root: Path, relative: str) -> str:
    """Public text for a (safe) relative path under ``root``."""
    return f"{public_ref(root)}/{relative}"


class FileHasher:
    """sha256 identities, each file read at most once per preflight (the reference rereads some 3x)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[str, int]] = {}

    def digest(self, path: Path) -> str:
        return self._identify(path)[0]

    def identity(self, path: Path, public_name: str) -> dict[str, object]:
        digest, size = self._identify(path)
        return {"path": public_name, "sha256": digest, "size_bytes": size}

    def _identify(self, path: Path) -> tuple[str, int]:
        key = path.absolute()
        if key not in self._seen:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            self._seen[key] = ("sha256:" + digest, path.stat().st_size)
        return self._seen[key]


def stat_identity(path: Path, public_name: str) -> dict[str, object]:
    """A fast identity (size and mtime, no digest) for multi-GB weight files."""
    info = path.stat()
    return {"path": public_name, "sha256": None, "size_bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
