"""The dataset-snapshot probe of the training preflight.

It checks a snapshot directory the way geno-lewm 0.2.1's preflight does and
emits the same issue codes in the same order (the parity tests compare the
two code lists): the seven core files, ``SHA256SUMS``, the manifest's
``splits`` and ``files``, and the cross-checks between the package metadata,
the split-integrity report, the input-check report and the snapshot report.

Differences from the reference, all deliberate:

* the fixture-snapshot heuristic matches whole words of the ``snapshot_id``
  (split on non-alphanumerics), so ``latest`` or ``attestation`` no longer
  count as ``test``;
* issue paths are public (``<dataset dir name>/<file>``), never absolute;
* each file is hashed once per preflight;
* a JSON or ``SHA256SUMS`` file that is not UTF-8 is reported
  (``<prefix>.invalid_json`` / ``dataset.checksums.invalid``) instead of
  raising ``UnicodeDecodeError``.

It does not read windows or Parquet: loading is the data layer's job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from geno_lewm_jax.training.preflight.report import (
    SCHEMA_VERSION,
    FileHasher,
    IssueLog,
    is_positive_int,
    public_child,
    public_ref,
)

CORE_FILES = (
    "dataset_package.json",
    "dataset_manifest.json",
    "data_card.md",
    "split_integrity.json",
    "dataset_input_check_report.json",
    "dataset_snapshot_report.json",
    "SHA256SUMS",
)
PACKAGE_GENERATOR = "tools.release.dataset_package"
SNAPSHOT_GENERATOR = "tools.release.dataset_snapshot"
INPUT_CHECK_GENERATOR = "tools.release.dataset_snapshot.check_inputs"
EVAL_SPLIT_PREFIXES = ("eval", "test", "holdout", "validation", "val")
FIXTURE_WORDS = frozenset({"fixture", "test", "smoke", "dummy"})
_SHA256_TEXT = re.compile(r"sha256:[0-9a-fA-F]{64}")


def looks_like_fixture(snapshot_id: str) -> bool:
    """True when a whole word of the id marks a fixture/test snapshot."""
    return not FIXTURE_WORDS.isdisjoint(re.split(r"[^0-9a-z]+", snapshot_id.lower()))


def inspect_dataset(
    dataset_dir: Path, *, allow_fixture_dataset: bool, log: IssueLog, hasher: FileHasher
) -> dict[str, object]:
    """The report's ``dataset`` section; issues go to ``log``."""
    probe = _DatasetProbe(dataset_dir, log, hasher)
    return probe.run(allow_fixture_dataset)


def _nonblank(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _is_safe_relative(text: str) -> bool:
    path = Path(text)
    return not path.is_absolute() and ".." not in path.parts


class _DatasetProbe:
    """One pass over one snapshot directory."""

    def __init__(self, root: Path, log: IssueLog, hasher: FileHasher) -> None:
        self.root = root
        self.log = log
        self.hasher = hasher

    def at(self, relative: str) -> str:
        return public_child(self.root, relative)

    def run(self, allow_fixture_dataset: bool) -> dict[str, object]:
        core: dict[str, dict[str, object] | None] = {}
        section: dict[str, object] = {"path": public_ref(self.root), "core_files": core, "files": [], "splits": {}}
        if not self.root.is_dir():
            self.log.error("dataset.dir_missing", public_ref(self.root), "dataset_dir does not exist or is not a directory")
            return section
        for name in CORE_FILES:
            path = self.root / name
            if path.is_file():
                core[name] = self.hasher.identity(path, name)
            else:
                core[name] = None
                self.log.error(f"dataset.{name}.missing", self.at(name), f"the snapshot has no {name}")
        package = self._json_object("dataset_package.json", "dataset.package")
        manifest = self._json_object("dataset_manifest.json", "dataset.manifest")
        integrity = self._json_object("split_integrity.json", "dataset.integrity")
        input_check = self._json_object("dataset_input_check_report.json", "dataset.input_check")
        snapshot_report = self._json_object("dataset_snapshot_report.json", "dataset.snapshot_report")
        checksums = self._checksums()
        if manifest is None:
            return section

        snapshot_id = _nonblank(manifest.get("snapshot_id"))
        section["snapshot_id"] = snapshot_id
        if snapshot_id is not None and not allow_fixture_dataset and looks_like_fixture(snapshot_id):
            self.log.error(
                "dataset.fixture_snapshot",
                self.at("dataset_manifest.json"),
                f"snapshot_id {snapshot_id!r} names a fixture/test snapshot; pass allow_fixture_dataset to train on it",
            )
        splits = manifest.get("splits")
        if isinstance(splits, dict):
            section["splits"] = splits
            self._check_split_names(splits)
        else:
            self.log.error("dataset.splits.invalid", self.at("dataset_manifest.json"), "manifest splits is not an object")
        files = manifest.get("files")
        if isinstance(files, list):
            section["files"] = self._check_listed_files(files, checksums)
        else:
            self.log.error("dataset.files.invalid", self.at("dataset_manifest.json"), "manifest files is not a list")

        if package is not None:
            self._check_package(manifest, package)
        if integrity is not None:
            self._check_integrity(manifest, integrity)
        if input_check is not None:
            self._check_input_check(manifest, input_check, snapshot_report)
        if snapshot_report is not None:
            self._check_snapshot_report(manifest, snapshot_report)
        for name in CORE_FILES[:-1]:
            path = self.root / name
            if path.is_file() and checksums.get(name) != self.hasher.digest(path):
                self.log.error(
                    f"dataset.{name}.checksum_mismatch", self.at(name), f"SHA256SUMS has no matching digest for {name}"
                )
        return section

    # --- readers ------------------------------------------------------------------------------
    def _json_object(self, name: str, prefix: str) -> dict[str, Any] | None:
        path = self.root / name
        if not path.is_file():
            return None
        try:
            payload = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.log.error(f"{prefix}.invalid_json", self.at(name), f"{name} is not valid JSON: {exc}")
            return None
        if not isinstance(payload, dict):
            self.log.error(f"{prefix}.invalid", self.at(name), f"{name} must hold a JSON object, not {type(payload).__name__}")
            return None
        return payload

    def _checksums(self) -> dict[str, str]:
        """``SHA256SUMS`` as {relative path: "sha256:<lower hex>"}; malformed lines are reported."""
        path = self.root / "SHA256SUMS"
        if not path.is_file():
            return {}
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            self.log.error("dataset.checksums.invalid", self.at("SHA256SUMS"), "SHA256SUMS is not UTF-8 text")
            return {}
        table: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            fields = stripped.split()
            if len(fields) != 2:
                self.log.error(
                    "dataset.checksums.invalid",
                    self.at("SHA256SUMS"),
                    f"SHA256SUMS line {number} is not '<hex digest> <relative path>'",
                )
                continue
            table[fields[1]] = "sha256:" + fields[0].lower()
        return table

    # --- manifest -----------------------------------------------------------------------------
    def _check_split_names(self, splits: dict[Any, Any]) -> None:
        names = [name.lower() for name in splits if isinstance(name, str)]
        where = self.at("dataset_manifest.json")
        if not any(name.startswith("train") for name in names):
            self.log.error("dataset.train_split_missing", where, "no manifest split name starts with 'train'")
        if not any(not name.startswith("train") and name.startswith(EVAL_SPLIT_PREFIXES) for name in names):
            self.log.error(
                "dataset.eval_split_missing",
                where,
                "no manifest split name starts with one of " + ", ".join(EVAL_SPLIT_PREFIXES),
            )

    def _check_listed_files(self, entries: list[Any], checksums: dict[str, str]) -> list[dict[str, object]]:
        recorded: list[dict[str, object]] = []
        for index, entry in enumerate(entries):
            where = self.at("dataset_manifest.json")
            if not isinstance(entry, dict):
                self.log.error("dataset.file.invalid", where, f"manifest files[{index}] is not an object")
                continue
            relative = _nonblank(entry.get("path"))
            if relative is None:
                self.log.error("dataset.file.path_missing", where, f"manifest files[{index}] has no path")
                continue
            if not _is_safe_relative(relative):
                self.log.error(
                    "dataset.file.unsafe_path", public_ref(relative), f"manifest files[{index}] points outside the snapshot"
                )
                continue
            path = self.root / relative
            if not path.is_file():
                self.log.error("dataset.file.missing", self.at(relative), "listed in the manifest but not on disk")
                continue
            identity = self.hasher.identity(path, relative)
            declared = _nonblank(entry.get("sha256"))
            if declared is not None and declared != identity["sha256"]:
                self.log.error("dataset.file.hash_mismatch", self.at(relative), "file digest differs from the manifest's sha256")
            listed = checksums.get(relative)
            if listed is None:
                self.log.error("dataset.file.checksum_missing", self.at(relative), "SHA256SUMS has no line for this file")
            elif listed != identity["sha256"]:
                self.log.error("dataset.file.checksum_mismatch", self.at(relative), "file digest differs from SHA256SUMS")
            recorded.append({"path": relative, "split": entry.get("split"), "records": entry.get("records"), **identity})
        return recorded

    # --- companion reports --------------------------------------------------------------------
    def _check_package(self, manifest: dict[str, Any], package: dict[str, Any]) -> None:
        where = self.at("dataset_package.json")
        if package.get("generated_by") != PACKAGE_GENERATOR:
            self.log.error("dataset.package.generated_by", where, f"generated_by is not {PACKAGE_GENERATOR}")
        if package.get("snapshot_id") != manifest.get("snapshot_id"):
            self.log.error("dataset.package.snapshot_mismatch", where, "snapshot_id differs from the manifest's")
        if package.get("files") != manifest.get("files"):
            self.log.error("dataset.package.files_mismatch", where, "files differs from the manifest's files")

    def _check_integrity(self, manifest: dict[str, Any], integrity: dict[str, Any]) -> None:
        where = self.at("split_integrity.json")
        if integrity.get("snapshot_id") != manifest.get("snapshot_id"):
            self.log.error("dataset.integrity.snapshot_mismatch", where, "snapshot_id differs from the manifest's")
        if integrity.get("manifest_sha256") != self.hasher.digest(self.root / "dataset_manifest.json"):
            self.log.error(
                "dataset.integrity.manifest_hash_mismatch", where, "manifest_sha256 is not the digest of dataset_manifest.json"
            )
        checks = integrity.get("leakage_checks")
        if not isinstance(checks, list):
            self.log.error("dataset.integrity.leakage_missing", where, "leakage_checks is not a list")
            return
        for index, check in enumerate(checks):
            if isinstance(check, dict) and check.get("status") != "passed":
                self.log.error("dataset.integrity.leakage_failed", where, f"leakage_checks[{index}] status is not 'passed'")

    def _check_input_check(
        self, manifest: dict[str, Any], report: dict[str, Any], snapshot_report: dict[str, Any] | None
    ) -> None:
        where = self.at("dataset_input_check_report.json")
        prefix = "dataset.input_check"
        if report.get("schema_version") != SCHEMA_VERSION:
            self.log.error(f"{prefix}.schema_version", where, f"schema_version is not {SCHEMA_VERSION}")
        if report.get("generated_by") != INPUT_CHECK_GENERATOR:
            self.log.error(f"{prefix}.generated_by", where, f"generated_by is not {INPUT_CHECK_GENERATOR}")
        if report.get("snapshot_id") != manifest.get("snapshot_id"):
            self.log.error(f"{prefix}.snapshot_mismatch", where, "snapshot_id differs from the manifest's")
        inputs = report.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            self.log.error(f"{prefix}.inputs", where, "inputs is missing or empty")
            return
        observed = [_input_entry(item) if isinstance(item, dict) else None for item in inputs]
        if any(item is None for item in observed):
            self.log.error(
                f"{prefix}.inputs", where, "every input needs safe relative paths, split, description, sha256 and size_bytes"
            )
            return
        if snapshot_report is not None and observed != _inputs_from_snapshot(snapshot_report.get("files")):
            self.log.error(f"{prefix}.stale", where, "inputs disagree with the snapshot report's source files")

    def _check_snapshot_report(self, manifest: dict[str, Any], report: dict[str, Any]) -> None:
        where = self.at("dataset_snapshot_report.json")
        prefix = "dataset.snapshot_report"
        if report.get("schema_version") != SCHEMA_VERSION:
            self.log.error(f"{prefix}.schema_version", where, f"schema_version is not {SCHEMA_VERSION}")
        if report.get("generated_by") != SNAPSHOT_GENERATOR:
            self.log.error(f"{prefix}.generated_by", where, f"generated_by is not {SNAPSHOT_GENERATOR}")
        if report.get("snapshot_id") != manifest.get("snapshot_id"):
            self.log.error(f"{prefix}.snapshot_mismatch", where, "snapshot_id differs from the manifest's")
        for key, expected in (
            ("report_path", "dataset_snapshot_report.json"),
            ("metadata_path", "dataset_package.json"),
            ("input_check_path", "dataset_input_check_report.json"),
        ):
            if report.get(key) != expected:
                self.log.error(f"{prefix}.{key}", where, f"{key} is not {expected}")
        self._check_input_check_identity(report.get("input_check"))
        listed = report.get("files")
        if not isinstance(listed, list) or not listed:
            self.log.error(f"{prefix}.files", where, "files is missing or empty")
            return
        manifest_files = manifest.get("files")
        if isinstance(manifest_files, list) and _paths_of(listed) != _paths_of(manifest_files):
            self.log.error(f"{prefix}.files_mismatch", where, "file paths (in order) differ from the manifest's")

    def _check_input_check_identity(self, recorded: object) -> None:
        name = "dataset_input_check_report.json"
        prefix = "dataset.snapshot_report.input_check"
        where = self.at(name)
        if not isinstance(recorded, dict):
            self.log.error(prefix, self.at("dataset_snapshot_report.json"), "input_check identity object is missing")
            return
        if recorded.get("path") != name:
            self.log.error(f"{prefix}.path", where, f"input_check.path is not {name}")
        path = self.root / name
        if not path.is_file():
            self.log.error(f"{prefix}.missing", where, f"the snapshot report cites {name}, which is absent")
            return
        actual = self.hasher.identity(path, name)
        if recorded.get("sha256") != actual["sha256"] or recorded.get("size_bytes") != actual["size_bytes"]:
            self.log.error(f"{prefix}.stale", where, f"input_check identity does not match the current {name}")


def _paths_of(entries: list[Any]) -> list[object]:
    return [entry.get("path") if isinstance(entry, dict) else None for entry in entries]


def _input_entry(item: dict[str, Any]) -> dict[str, object] | None:
    """An input-check entry in canonical form, or None when any field is unsafe or mistyped."""
    source, staged = item.get("source_path"), item.get("staged_path")
    for value in (source, staged):
        if not isinstance(value, str) or not value.strip() or not _is_safe_relative(value):
            return None
    split, description, digest, size = (item.get(k) for k in ("split", "description", "sha256", "size_bytes"))
    if not isinstance(split, str) or not isinstance(description, str):
        return None
    if not isinstance(digest, str) or _SHA256_TEXT.fullmatch(digest) is None or not is_positive_int(size):
        return None
    return {
        "source_path": source,
        "staged_path": staged,
        "split": split,
        "description": description,
        "sha256": digest,
        "size_bytes": size,
    }


def _inputs_from_snapshot(files: object) -> list[dict[str, object] | None]:
    """The input-check entries a snapshot report's ``files`` implies (malformed items become None)."""
    if not isinstance(files, list):
        return []
    derived: list[dict[str, object] | None] = []
    for item in files:
        if not isinstance(item, dict):
            derived.append(None)
            continue
        texts = [item.get(k) for k in ("path", "source_path", "split", "description", "source_sha256")]
        size = item.get("source_size_bytes")
        if not all(isinstance(text, str) for text in texts) or not is_positive_int(size):
            derived.append(None)
            continue
        staged, source, split, description, digest = texts
        derived.append(
            {
                "source_path": source,
                "staged_path": staged,
                "split": split,
                "description": description,
                "sha256": digest,
                "size_bytes": size,
            }
        )
    return derived
