"""Reader for GenoLeWM dataset snapshots, as the reference's release tools write them.

A snapshot is a directory holding ``dataset_manifest.json`` (``snapshot_id``,
``splits``, ``files[]``), ``SHA256SUMS``, window rows in ``placed/*.jsonl``
and ``carbon/*.jsonl``, and variant shards in ``gnomad/**.parquet`` and
``clinvar/**.parquet``. :func:`load_snapshot` checks every piece and loads it
into typed records; anything malformed raises :class:`DatasetError` naming
the file (and the line for JSONL, the row for Parquet).

Split roles come from split names, with the reference preflight's prefixes:
``train*`` is training, ``val*`` validation, ``eval*``/``test*`` evaluation,
``holdout*`` holdout; anything else is never trained on. A manifest may also
list ``holdout_chroms`` (e.g. ``["21"]``): rows on those chromosomes are held
out wherever they appear (``chr`` prefixes are ignored when comparing).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from geno_lewm_jax.data.actions import EditSpec
from geno_lewm_jax.data.integrity import CHECKSUMS_NAME, parse_sha256sums, sha256_file
from geno_lewm_jax.errors import DatasetError, GenoLeWMError, InputError

MANIFEST_NAME = "dataset_manifest.json"
CORE_FILES = (
    "dataset_package.json",
    MANIFEST_NAME,
    "data_card.md",
    "split_integrity.json",
    "dataset_input_check_report.json",
    "dataset_snapshot_report.json",
    CHECKSUMS_NAME,
)
GNOMAD_COLUMNS = ("chrom", "pos", "ref", "alt", "af_global", "filter", "schema_version")
CLINVAR_COLUMNS = ("chrom", "pos", "ref", "alt", "clinical_significance", "review_status", "clinvar_id", "schema_version")
_DNA = frozenset("ACGTN")

Verify = Literal["full", "sizes"]
FileKind = Literal["placed", "carbon", "gnomad", "clinvar", "other"]
SplitRole = Literal["train", "validation", "eval", "holdout", "other", "unassigned"]


def split_role(name: str | None) -> SplitRole:
    """Role of a split from its name (the preflight's prefixes)."""
    if name is None:
        return "unassigned"
    low = name.lower()
    if low.startswith("train"):
        return "train"
    if low.startswith("val"):
        return "validation"
    if low.startswith(("eval", "test")):
        return "eval"
    if low.startswith("holdout"):
        return "holdout"
    return "other"


def normalize_chrom(chrom: str) -> str:
    """Chromosome name for comparisons: no ``chr`` prefix, X/Y/MT upper-cased."""
    bare = chrom[3:] if chrom[:3].lower() == "chr" else chrom
    upper = bare.upper()
    if upper in ("M", "MT"):
        return "MT"
    return upper if upper in ("X", "Y", "XY") else bare


def file_kind(path: str) -> FileKind:
    """What a manifest path holds, by the reference trainer's prefix/suffix rules."""
    if path.endswith(".jsonl"):
        if path.startswith("placed/"):
            return "placed"
        if path.startswith("carbon/"):
            return "carbon"
    if path.endswith(".parquet"):
        if path.startswith("gnomad/"):
            return "gnomad"
        if path.startswith("clinvar/"):
            return "clinvar"
    return "other"


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotFile:
    """One ``files[]`` entry of the manifest, checked against the disk."""

    path: str
    kind: FileKind
    split: str | None
    role: SplitRole
    records: int | None
    sha256: str | None
    size_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class SplitInfo:
    name: str
    role: SplitRole
    records: int
    files: tuple[str, ...]
    description: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class WindowRecord:
    """A source window; coordinates are 0-based half-open, ``chrom`` is None when unplaced."""

    record_id: str
    source: str
    sequence: str
    start_bp: int
    chrom: str | None
    file: str
    line: int
    split: str | None
    role: SplitRole
    window_id: str

    @property
    def end_bp(self) -> int:
        return self.start_bp + len(self.sequence)


@dataclasses.dataclass(frozen=True, slots=True)
class VariantShard:
    """All rows of one gnomAD or ClinVar Parquet shard, as edits in row order."""

    file: SnapshotFile
    edits: tuple[EditSpec, ...]

    @property
    def kind(self) -> FileKind:
        return self.file.kind


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A loaded, verified snapshot. Windows and shards keep manifest order."""

    root: Path
    snapshot_id: str
    manifest: Mapping[str, Any]
    splits: Mapping[str, SplitInfo]
    files: tuple[SnapshotFile, ...]
    windows: tuple[WindowRecord, ...]
    shards: tuple[VariantShard, ...]
    holdout_chroms: frozenset[str]
    verify: Verify

    def is_holdout_chrom(self, chrom: str | None) -> bool:
        return chrom is not None and normalize_chrom(chrom) in self.holdout_chroms

    def windows_in(self, role: SplitRole) -> tuple[WindowRecord, ...]:
        return tuple(w for w in self.windows if w.role == role)

    def shards_of(self, kind: FileKind) -> tuple[VariantShard, ...]:
        return tuple(s for s in self.shards if s.kind == kind)


# --- small validators ---------------------------------------------------------------------------
def _fail(message: str, **details: Any) -> DatasetError:
    return DatasetError(message, details=details)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: missing; this is not a GenoLeWM dataset snapshot",
            details={"path": str(path)},
            remediation="point --dataset_dir at a snapshot directory (it holds dataset_manifest.json)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: unreadable ({exc})", path=str(path)) from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})", path=str(path), line=exc.lineno, column=exc.colno) from None
    if not isinstance(payload, dict):
        raise _fail(f"{path}: must hold a JSON object, not {type(payload).__name__}", path=str(path))
    return payload


def _opt_count(value: Any, where: str, manifest: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{manifest}: {where} must be a non-negative integer, got {value!r}", path=str(manifest), field=where)
    return value


def _safe_relative(root: Path, rel: str, manifest: Path, where: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        raise _fail(f"{manifest}: {where} {rel!r} must be a relative path inside the snapshot", path=str(manifest), field=where)
    target = (root / rel).resolve()
    base = root.resolve()
    if base not in target.parents:
        raise _fail(f"{manifest}: {where} {rel!r} resolves outside the snapshot", path=str(manifest), field=where)
    return root / rel


# --- manifest -----------------------------------------------------------------------------------
def _parse_splits(manifest: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    raw = manifest.get("splits")
    if not isinstance(raw, dict) or not raw:
        raise _fail(f"{path}: 'splits' must be a non-empty object of split name -> {{records, description}}", path=str(path), field="splits")
    out: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise _fail(f"{path}: split names must be non-empty strings", path=str(path), field="splits")
        if not isinstance(value, dict):
            raise _fail(f"{path}: splits.{name} must be an object", path=str(path), field=f"splits.{name}")
        out[name] = {
            "records": _opt_count(value.get("records"), f"splits.{name}.records", path),
            "description": value.get("description") if isinstance(value.get("description"), str) else None,
        }
    return out


def _parse_holdout_chroms(manifest: dict[str, Any], path: Path) -> frozenset[str]:
    raw = manifest.get("holdout_chroms", [])
    if not isinstance(raw, list) or not all(isinstance(c, str) and c.strip() for c in raw):
        raise _fail(f"{path}: 'holdout_chroms' must be a list of chromosome names", path=str(path), field="holdout_chroms")
    return frozenset(normalize_chrom(c.strip()) for c in raw)


def _parse_file_entries(manifest: dict[str, Any], path: Path, root: Path, splits: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = manifest.get("files")
    if not isinstance(raw, list) or not raw:
        raise _fail(f"{path}: 'files' must be a non-empty list", path=str(path), field="files")
    seen: set[str] = set()
    entries = []
    for i, item in enumerate(raw):
        where = f"files[{i}]"
        if not isinstance(item, dict):
            raise _fail(f"{path}: {where} must be an object", path=str(path), field=where)
        rel = item.get("path")
        if not isinstance(rel, str) or not rel.strip():
            raise _fail(f"{path}: {where}.path must be a non-empty string", path=str(path), field=f"{where}.path")
        _safe_relative(root, rel, path, f"{where}.path")
        if rel in seen:
            raise _fail(f"{path}: {where}.path {rel!r} is listed twice", path=str(path), field=f"{where}.path")
        seen.add(rel)
        split = item.get("split")
        if split is not None and (not isinstance(split, str) or split not in splits):
            raise _fail(
                f"{path}: {where} ({rel}) names split {split!r}, which 'splits' does not declare",
                path=str(path),
                field=f"{where}.split",
            )
        digest = item.get("sha256")
        if digest is not None and not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
            raise _fail(f"{path}: {where}.sha256 must be 'sha256:<64 hex>', got {digest!r}", path=str(path), field=f"{where}.sha256")
        entries.append(
            {
                "path": rel,
                "split": split,
                "records": _opt_count(item.get("records"), f"{where}.records", path),
                "sha256": digest.lower() if isinstance(digest, str) else None,
                "size_bytes": _opt_count(item.get("size_bytes"), f"{where}.size_bytes", path),
            }
        )
    return entries


def _verify_files(root: Path, entries: list[dict[str, Any]], checksums: Mapping[str, str], verify: Verify) -> dict[str, int]:
    """Existence, size and (full mode) hash of every listed file; returns observed sizes."""
    sums_path = root / CHECKSUMS_NAME
    sizes: dict[str, int] = {}
    for entry in entries:
        rel = entry["path"]
        full = root / rel
        if not full.is_file():
            raise DatasetError(
                f"{full}: listed in {MANIFEST_NAME} but missing",
                details={"path": rel},
                remediation="re-download the snapshot or restore the file",
            )
        size = full.stat().st_size
        sizes[rel] = size
        if entry["size_bytes"] is not None and entry["size_bytes"] != size:
            raise _fail(f"{full}: size {size} bytes, the manifest says {entry['size_bytes']}", path=rel, expected=entry["size_bytes"], observed=size)
        if rel not in checksums:
            raise _fail(f"{full}: not covered by {sums_path}", path=rel)
    if verify == "full":
        for rel, expected in checksums.items():
            full = root / rel
            if not full.is_file():
                raise _fail(f"{full}: listed in {sums_path} but missing", path=rel)
            observed = sha256_file(full)
            if observed != expected:
                raise DatasetError(
                    f"{full}: sha256 {observed} does not match {sums_path} ({expected})",
                    details={"path": rel, "expected": expected, "observed": observed},
                    remediation="the file is corrupt or was edited; restore it from the snapshot's release",
                )
        for entry in entries:
            if entry["sha256"] is not None and entry["sha256"] != checksums[entry["path"]]:
                raise _fail(
                    f"{root / entry['path']}: the manifest sha256 {entry['sha256']} does not match the file",
                    path=entry["path"],
                    expected=entry["sha256"],
                )
    return sizes


# --- window rows --------------------------------------------------------------------------------
def _read_windows(root: Path, sf: SnapshotFile) -> list[WindowRecord]:
    full = root / sf.path
    rows: list[WindowRecord] = []
    try:
        handle = full.open(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{full}: unreadable ({exc})", path=sf.path) from None
    with handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_window_row(line, sf, full, line_no))
        except UnicodeDecodeError as exc:
            raise _fail(f"{full}: not UTF-8 text ({exc.reason})", path=sf.path) from None
    return rows


def _window_row(line: str, sf: SnapshotFile, full: Path, line_no: int) -> WindowRecord:
    where = f"{full}:{line_no}"

    def bad(message: str, **extra: Any) -> DatasetError:
        return _fail(f"{where}: {message}", path=sf.path, line=line_no, **extra)

    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad(f"invalid JSON ({exc.msg} at column {exc.colno})", column=exc.colno) from None
    if not isinstance(row, dict):
        raise bad(f"a window row must be a JSON object, not {type(row).__name__}")
    for key in ("record_id", "source", "sequence"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise bad(f"'{key}' must be a non-empty string", field=key)
    start = row.get("start_bp", 0)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise bad(f"'start_bp' must be a non-negative integer, got {start!r}", field="start_bp")
    chrom = row.get("chrom")
    if chrom is not None and (not isinstance(chrom, str) or not chrom):
        raise bad(f"'chrom' must be a non-empty string when present, got {chrom!r}", field="chrom")
    if chrom is None and sf.kind == "placed":
        raise bad("placed window rows must carry 'chrom'", field="chrom")
    sequence = row["sequence"].upper()
    bad_chars = set(sequence) - _DNA
    if bad_chars:
        raise bad(f"sequence holds {''.join(sorted(bad_chars))!r}; only A, C, G, T, N are allowed", field="sequence", bad_chars=sorted(bad_chars))
    end = row.get("end_bp")
    if end is not None and end != start + len(sequence):
        raise bad(f"'end_bp' {end!r} disagrees with start_bp {start} + {len(sequence)} bp of sequence", field="end_bp")
    return WindowRecord(
        record_id=row["record_id"],
        source=row["source"],
        sequence=sequence,
        start_bp=start,
        chrom=chrom,
        file=sf.path,
        line=line_no,
        split=sf.split,
        role=sf.role,
        window_id=hashlib.sha256(sequence.encode("ascii")).hexdigest(),
    )


# --- variant shards -----------------------------------------------------------------------------
def _read_shard(root: Path, sf: SnapshotFile) -> tuple[EditSpec, ...]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    full = root / sf.path
    required = GNOMAD_COLUMNS if sf.kind == "gnomad" else CLINVAR_COLUMNS
    try:
        parquet = pq.ParquetFile(full)
        names = set(parquet.schema_arrow.names)
    except (OSError, pa.ArrowException) as exc:
        raise _fail(f"{full}: not a readable Parquet file ({exc})", path=sf.path) from None
    missing = [c for c in required if c not in names]
    if missing:
        raise DatasetError(
            f"{full}: missing required column(s) {', '.join(missing)} of a {sf.kind} shard",
            details={"path": sf.path, "missing_columns": missing, "required_columns": list(required)},
            remediation=f"regenerate the shard with the geno-lewm prepare-{sf.kind} tool",
        )
    try:
        table = parquet.read(columns=["chrom", "pos", "ref", "alt"])
    except (OSError, pa.ArrowException) as exc:
        raise _fail(f"{full}: cannot read rows ({exc})", path=sf.path) from None
    for column in ("chrom", "pos", "ref", "alt"):
        ctype = table.schema.field(column).type
        textual = pa.types.is_string(ctype) or pa.types.is_large_string(ctype)
        if not (pa.types.is_integer(ctype) if column == "pos" else textual):
            wanted = "an integer" if column == "pos" else "a string"
            raise _fail(f"{full}: column '{column}' must be {wanted} column, found {ctype}", path=sf.path, column=column)
    cols = {c: table.column(c).to_pylist() for c in ("chrom", "pos", "ref", "alt")}
    edits = []
    for row, (chrom, pos, ref, alt) in enumerate(zip(cols["chrom"], cols["pos"], cols["ref"], cols["alt"])):
        try:
            edits.append(EditSpec(chrom, pos, ref, alt))
        except GenoLeWMError as exc:
            raise DatasetError(
                f"{full}: row {row}: {chrom}:{pos} {ref}>{alt} is not a valid edit ({exc.message})",
                details={"path": sf.path, "row": row, "cause": exc.code},
            ) from exc
    return tuple(edits)


def _check_variants_against_windows(root: Path, windows: list[WindowRecord], shards: list[VariantShard]) -> None:
    """Every variant whose REF lies inside a placed window must match that window's bases.

    A mismatch means the shard and the windows disagree on coordinates or
    assembly; the reference would crash mid-run when it drew such an edit.
    Variants whose REF straddles a window end are legitimate and simply not
    edits for that window.
    """
    index: dict[str, tuple[list[int], list[tuple[EditSpec, SnapshotFile, int]]]] = {}
    for shard in shards:
        for row, spec in enumerate(shard.edits):
            index.setdefault(spec.chrom, ([], []))[1].append((spec, shard.file, row))
    for chrom, (positions, items) in index.items():
        items.sort(key=lambda item: item[0].pos)
        positions.extend(item[0].pos for item in items)
    for window in windows:
        if window.chrom is None or window.chrom not in index:
            continue
        positions, items = index[window.chrom]
        lo = bisect.bisect_right(positions, window.start_bp)
        hi = bisect.bisect_right(positions, window.end_bp)
        for spec, sf, row in items[lo:hi]:
            rel = spec.pos - 1 - window.start_bp
            observed = window.sequence[rel : rel + len(spec.ref)]
            if len(observed) == len(spec.ref) and observed != spec.ref:
                raise DatasetError(
                    f"{root / sf.path}: row {row}: variant {spec.chrom}:{spec.pos} {spec.ref}>{spec.alt} lies in window "
                    f"{window.record_id} ({root / window.file}:{window.line}) but the window holds {observed!r} there",
                    details={
                        "path": sf.path,
                        "row": row,
                        "window_file": window.file,
                        "window_line": window.line,
                        "expected_ref": spec.ref,
                        "observed_ref": observed,
                    },
                    remediation="the shard and the windows use different coordinates or assemblies; rebuild one of them",
                )


def _count_other(full: Path, declared: int | None, size: int) -> int | None:
    if declared is not None:
        return declared
    return None if size else 0


# --- entry point --------------------------------------------------------------------------------
def load_snapshot(path: str | Path, *, verify: Verify = "full") -> Snapshot:
    """Read and check a dataset snapshot directory.

    ``verify="full"`` hashes every file against ``SHA256SUMS`` (and the
    manifest's ``sha256``); ``"sizes"`` only checks presence and sizes, for
    large snapshots already verified once.
    """
    if verify not in ("full", "sizes"):
        raise InputError(f"verify must be 'full' or 'sizes', got {verify!r}", details={"field": "verify", "value": verify})
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset snapshot directory not found", details={"path": str(root)}, remediation="check --dataset_dir")
    manifest_path = root / MANIFEST_NAME
    manifest = _read_json_object(manifest_path)
    snapshot_id = manifest.get("snapshot_id")
    if not isinstance(snapshot_id, str) or not snapshot_id.strip():
        raise _fail(f"{manifest_path}: 'snapshot_id' must be a non-empty string", path=str(manifest_path), field="snapshot_id")
    split_specs = _parse_splits(manifest, manifest_path)
    holdout = _parse_holdout_chroms(manifest, manifest_path)
    entries = _parse_file_entries(manifest, manifest_path, root, split_specs)
    checksums = parse_sha256sums(root / CHECKSUMS_NAME)
    sizes = _verify_files(root, entries, checksums, verify)

    files: list[SnapshotFile] = []
    windows: list[WindowRecord] = []
    shards: list[VariantShard] = []
    observed: dict[str, int | None] = {}
    for entry in entries:
        rel = entry["path"]
        sf = SnapshotFile(rel, file_kind(rel), entry["split"], split_role(entry["split"]), entry["records"], entry["sha256"], sizes[rel])
        if sf.kind in ("placed", "carbon"):
            rows = _read_windows(root, sf)
            windows.extend(rows)
            count: int | None = len(rows)
        elif sf.kind in ("gnomad", "clinvar"):
            shard = VariantShard(sf, _read_shard(root, sf))
            shards.append(shard)
            count = len(shard.edits)
        else:
            count = _count_other(root / rel, sf.records, sf.size_bytes)
        if sf.records is not None and count is not None and count != sf.records:
            raise _fail(f"{root / rel}: holds {count} records, the manifest says {sf.records}", path=rel, expected=sf.records, observed=count)
        observed[rel] = count
        files.append(sf)

    splits: dict[str, SplitInfo] = {}
    for name, spec in split_specs.items():
        members = tuple(f.path for f in files if f.split == name)
        counts = [observed[m] for m in members]
        known = sum(c for c in counts if c is not None)
        if not members or (known == 0 and None not in counts):
            raise DatasetError(
                f"{manifest_path}: split {name!r} is empty"
                + (f" (its files {', '.join(members)} hold no records)" if members else " (no file belongs to it)"),
                details={"path": str(manifest_path), "split": name, "files": list(members)},
                remediation="drop the split from the manifest or restore its files",
            )
        if spec["records"] is not None and None not in counts and known != spec["records"]:
            raise _fail(
                f"{manifest_path}: split {name!r} declares {spec['records']} records, its files hold {known}",
                path=str(manifest_path),
                split=name,
            )
        splits[name] = SplitInfo(name, split_role(name), known, members, spec["description"])

    _check_variants_against_windows(root, windows, shards)
    return Snapshot(
        root=root,
        snapshot_id=snapshot_id,
        manifest=manifest,
        splits=splits,
        files=tuple(files),
        windows=tuple(windows),
        shards=tuple(shards),
        holdout_chroms=holdout,
        verify=verify,
    )


__all__ = [
    "CLINVAR_COLUMNS",
    "CORE_FILES",
    "GNOMAD_COLUMNS",
    "MANIFEST_NAME",
    "Snapshot",
    "SnapshotFile",
    "SplitInfo",
    "VariantShard",
    "WindowRecord",
    "file_kind",
    "load_snapshot",
    "normalize_chrom",
    "split_role",
]
