"""Typed errors with stable codes and CLI exit codes.

Every expected failure in geno-lewm-jax is one of these. Codes and exit-code
families follow geno-lewm 0.2.1 so that scripts wrapping either stack can
branch on the same values. One deliberate difference: a bad configuration
value (from flags or YAML) is a caller mistake, so ``InvalidConfigError`` is
both a ``ConfigError`` and an ``InputError`` and exits 2.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any


class GenoLeWMError(Exception):
    """Root of the hierarchy: a message, structured details and a remediation."""

    code: str = "INTERNAL.GENERIC"

    def __init__(
        self,
        message: str = "",
        *,
        details: Mapping[str, Any] | None = None,
        remediation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.remediation = remediation

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "remediation": self.remediation,
        }

    def to_json(self) -> str:
        payload = self.to_dict()
        payload["ts"] = datetime.now(tz=timezone.utc).isoformat()
        return json.dumps(payload, sort_keys=True, default=str)

    def one_line(self) -> str:
        """The single line the CLI prints: code and message, no traceback."""
        text = " ".join(str(self.message).split())
        return f"error[{self.code}]: {text}"


# --- configuration (exit 3) -------------------------------------------------
class ConfigError(GenoLeWMError):
    code = "CONFIG.GENERIC"


class SchemaCompatError(ConfigError):
    code = "CONFIG.SCHEMA_INCOMPAT"


class MissingConfigError(ConfigError):
    code = "CONFIG.MISSING_FIELD"


# --- caller input (exit 2) --------------------------------------------------
class InputError(GenoLeWMError):
    code = "INPUT.GENERIC"


class InvalidConfigError(ConfigError, InputError):
    """A flag or YAML value is of the wrong type, out of range or unknown."""

    code = "CONFIG.INVALID_VALUE"


class UnknownTopLevelKeyError(InvalidConfigError):
    code = "CONFIG.UNKNOWN_TOP_LEVEL_KEY"


class ConfigFileNotFoundError(MissingConfigError, InvalidConfigError):
    """A config file named on the command line (``--config_yaml``, ``--flagfile``) does not exist."""

    code = "CONFIG.FILE_NOT_FOUND"


class InvalidEditError(InputError):
    code = "INPUT.INVALID_EDIT"


class UnsupportedEditError(InputError):
    code = "INPUT.UNSUPPORTED_EDIT"


class WindowMismatchError(InputError):
    code = "INPUT.WINDOW_MISMATCH"


class OverlappingEditsError(InputError):
    code = "INPUT.OVERLAPPING_EDITS"


class OutOfWindowError(InputError):
    code = "INPUT.OUT_OF_WINDOW"


class DatasetError(InputError):
    """A dataset snapshot file is missing, malformed or fails its integrity check."""

    code = "INPUT.DATASET"


class CheckpointMismatchError(InputError):
    """A run directory holds checkpoints of a different run or config."""

    code = "INPUT.CHECKPOINT_MISMATCH"


# --- resources and environment (exit 4) -------------------------------------
class ResourceError(GenoLeWMError):
    code = "RESOURCE.GENERIC"


class CacheCorruptError(ResourceError):
    code = "RESOURCE.CACHE_CORRUPT"


class CacheWriteError(ResourceError):
    """The feature cache could not be written (disk full, read-only...); nothing partial became visible."""

    code = "RESOURCE.CACHE_WRITE_FAILED"


class DiskFullError(ResourceError):
    code = "RESOURCE.DISK_FULL"


class OutOfMemoryError(ResourceError):
    code = "RESOURCE.OOM"


class ModelNotFoundError(ResourceError):
    code = "RESOURCE.MODEL_NOT_FOUND"


class ModelCorruptError(ResourceError):
    """A model-directory file exists but cannot be parsed or disagrees with Carbon's layout."""

    code = "RESOURCE.MODEL_CORRUPT"


class RuntimeSetupError(ResourceError):
    code = "RESOURCE.RUNTIME_SETUP"


class NetworkCallProhibitedError(ResourceError):
    code = "RESOURCE.NETWORK_PROHIBITED"


class RunDirLockedError(ResourceError):
    """Another live process holds the run directory."""

    code = "RESOURCE.RUN_DIR_LOCKED"


class CheckpointCorruptError(ResourceError):
    code = "RESOURCE.CHECKPOINT_CORRUPT"


class CheckpointSaveError(ResourceError):
    """A checkpoint could not be written (disk full, read-only or vanished directory...); it was not committed."""

    code = "RESOURCE.CHECKPOINT_SAVE_FAILED"


class EventLogWriteError(ResourceError):
    """The run's event log (``train.log``) could not be written."""

    code = "RESOURCE.EVENT_LOG_WRITE_FAILED"


# --- training (exit 5) ------------------------------------------------------
class TrainingError(GenoLeWMError):
    code = "TRAINING.GENERIC"


class CollapseDetectedError(TrainingError):
    code = "TRAINING.COLLAPSE_DETECTED"


class NaNLossError(TrainingError):
    code = "TRAINING.NAN_LOSS"


class DataLoaderError(TrainingError):
    code = "TRAINING.DATALOADER"


# --- export (exit 7) --------------------------------------------------------
class DeployError(GenoLeWMError):
    code = "DEPLOY.GENERIC"


class ExportFormatError(DeployError):
    code = "DEPLOY.EXPORT_FORMAT"


# --- bugs we caught (exit 9) ------------------------------------------------
class InternalError(GenoLeWMError):
    code = "INTERNAL.GENERIC"


class InvariantViolation(InternalError):
    code = "INTERNAL.INVARIANT_VIOLATION"


# Input is checked first: InvalidConfigError is also a ConfigError but exits 2.
_EXIT_FAMILIES: tuple[tuple[type[GenoLeWMError], int], ...] = (
    (InputError, 2),
    (ConfigError, 3),
    (ResourceError, 4),
    (TrainingError, 5),
    (DeployError, 7),
    (InternalError, 9),
)


def exit_code_for(exc: BaseException) -> int:
    """CLI exit code: 130 for Ctrl-C, 1 for an unexpected exception, else by family."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    for family, code in _EXIT_FAMILIES:
        if isinstance(exc, family):
            return code
    return 1


@dataclasses.dataclass(frozen=True)
class ErrorCodeEntry:
    code: str
    exception_class: type[GenoLeWMError]
    summary: str


def _registry() -> tuple[ErrorCodeEntry, ...]:
    seen: dict[str, type[GenoLeWMError]] = {}
    stack = [GenoLeWMError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls is GenoLeWMError:
            continue
        other = seen.get(cls.code)
        if other is not None and other is not cls:
            raise RuntimeError(f"duplicate error code {cls.code}: {other.__name__} and {cls.__name__}")
        seen[cls.code] = cls
    return tuple(
        ErrorCodeEntry(code, cls, (cls.__doc__ or cls.__name__).strip().splitlines()[0])
        for code, cls in sorted(seen.items())
    )


ERROR_CODES: tuple[ErrorCodeEntry, ...] = _registry()
