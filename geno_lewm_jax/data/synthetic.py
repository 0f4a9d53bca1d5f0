"""A small, complete, synthetic dataset snapshot in the GenoLeWM release format.

``make_synthetic_snapshot(path, seed=0)`` writes placed windows on three
chromosomes (22: training, 20: validation, 21: a holdout chromosome named in
the manifest), a few unplaced Carbon-style windows, gnomAD-like and
ClinVar-like Parquet shards whose alleles agree with the windows, eval
ClinVar rows that fall inside training windows (so split handling is
observable), and every integrity file the reference preflight checks. The
output is byte-identical for a seed: JSON is key-sorted, Parquet is written
with fixed settings, and no clock is read. It is the embedded default's
dataset and the test suite's.

``python -m geno_lewm_jax.data.synthetic --out DIR [--seed N] [--n_windows N] [--window_bp N]``

``repackage(path)`` recomputes the manifest's file identities and record
counts and rewrites the integrity files after a snapshot's data files were
edited (used by tests that plant rows).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geno_lewm_jax.data.integrity import file_identity, sha256_file, write_sha256sums
from geno_lewm_jax.data.snapshot import MANIFEST_NAME, split_role
from geno_lewm_jax.errors import InputError, InvariantViolation

BUILD_DATE = "2025-01-01T00:00:00Z"
"""Fixed stamp for ``generated_at`` fields: a format requirement, not a clock reading."""

SPEC_NAME = "synthetic_spec.json"
DEFAULT_N_WINDOWS = 128
HOLDOUT_CHROMS = ("21",)
SCHEMA_VERSION = "1.0.0"
# The reference preflight checks these producer names; they identify the file formats.
_PACKAGE_BY = "tools.release.dataset_package"
_INTEGRITY_BY = "tools.release.dataset_integrity"
_INPUT_CHECK_BY = "tools.release.dataset_snapshot.check_inputs"
_SNAPSHOT_BY = "tools.release.dataset_snapshot"
_AF_POPS = ("afr", "ami", "amr", "asj", "eas", "fin", "nfe", "oth", "sas")
_CARBON_SOURCES = ("eukaryotic_genes", "mrna", "splice_mrna", "gtdb")
_SIGNIFICANCE = ("P", "LP", "B", "LB", "VUS")
_REVIEW = ("criteria_provided,_single_submitter", "criteria_provided,_multiple_submitters,_no_conflicts", "reviewed_by_expert_panel")
_CODES = np.frombuffer(b"ACGT", dtype=np.uint8)
_EDGE = 80

_FILES: tuple[tuple[str, str, str], ...] = (
    ("placed/train-gnomad-common-windows.jsonl", "train_placed_gnomad_common", "Training windows placed on chromosome 22."),
    ("carbon/source-mix-windows.jsonl", "train_carbon", "Unplaced Carbon-corpus-style windows."),
    ("gnomad/v4.1/train/variants.parquet", "train_gnomad_common", "gnomAD-like common variants on the training windows."),
    ("clinvar/2024-06-01/train/variants.parquet", "train_clinvar", "ClinVar-like variants released for training."),
    ("placed/validation-windows.jsonl", "validation_placed", "Validation windows placed on chromosome 20."),
    ("gnomad/v4.1/validation/variants.parquet", "validation_placed", "gnomAD-like variants on the validation windows."),
    ("placed/holdout-chr21-windows.jsonl", "holdout_chr21", "Windows on the holdout chromosome 21."),
    ("gnomad/v4.1/holdout-chr21/variants.parquet", "holdout_chr21", "gnomAD-like variants on the holdout chromosome."),
    ("clinvar/2024-06-01/eval/variants.parquet", "eval_clinvar", "ClinVar-like evaluation variants (never training edits)."),
)
_SPLIT_TEXT = {
    "train_placed_gnomad_common": "Training windows placed on chromosome 22.",
    "train_carbon": "Training windows without genome coordinates.",
    "train_gnomad_common": "Training gnomAD-like variants.",
    "train_clinvar": "Training ClinVar-like variants.",
    "validation_placed": "Validation windows and variants (chromosome 20).",
    "holdout_chr21": "Holdout chromosome 21.",
    "eval_clinvar": "Evaluation ClinVar-like variants; some fall inside training windows.",
}


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


# --- sequence and variant generation --------------------------------------------------------------
def _random_dna(rng: np.random.Generator, n: int) -> str:
    return _CODES[rng.integers(0, 4, size=n)].tobytes().decode("ascii")


def _other(rng: np.random.Generator, base: str) -> str:
    return "ACGT".replace(base, "")[int(rng.integers(0, 3))]


def _spread_positions(rng: np.random.Generator, size: int, count: int, blocked: tuple[int, int] | None) -> list[int]:
    """``count`` positions at least 20 bp apart, away from the edges and from an N run."""
    chosen: list[int] = []
    for p in rng.integers(_EDGE, size - _EDGE - 16, size=count * 32):
        p = int(p)
        if blocked and blocked[0] - 20 <= p <= blocked[1] + 4:
            continue
        if all(abs(p - q) >= 20 for q in chosen):
            chosen.append(p)
            if len(chosen) == count:
                break
    return sorted(chosen)


def _allele_pair(rng: np.random.Generator, seq: str, p: int) -> tuple[str, str]:
    """A VCF-style REF/ALT at 0-based offset ``p`` whose REF matches ``seq``."""
    kind = rng.choice(5, p=[0.7, 0.1, 0.12, 0.04, 0.04])
    if kind == 0:
        return seq[p], _other(rng, seq[p])
    if kind == 1:
        return seq[p], seq[p] + _random_dna(rng, int(rng.integers(1, 7)))
    if kind == 2:
        return seq[p : p + 1 + int(rng.integers(1, 7))], seq[p]
    if kind == 3:
        ref = seq[p : p + int(rng.integers(2, 4))]
        return ref, "".join(_other(rng, b) for b in ref)
    n_ref = int(rng.integers(2, 5))
    n_alt = int(rng.choice([n for n in (2, 3, 4) if n != n_ref]))
    return seq[p : p + n_ref], seq[p] + _random_dna(rng, n_alt - 1)


def _gnomad_row(rng: np.random.Generator, chrom: str, pos: int, ref: str, alt: str) -> dict[str, Any]:
    row: dict[str, Any] = {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "filter": "PASS", "schema_version": SCHEMA_VERSION}
    row["af_global"] = float(np.float32(rng.uniform(0.01, 0.5)))
    for pop in _AF_POPS:
        row[f"af_{pop}"] = None if rng.random() < 0.2 else float(np.float32(rng.uniform(0.0, 0.8)))
    return row


def _clinvar_row(rng: np.random.Generator, chrom: str, pos: int, ref: str, alt: str, clinvar_id: int) -> dict[str, Any]:
    return {
        "chrom": chrom,
        "pos": pos,
        "ref": ref,
        "alt": alt,
        "clinical_significance": _SIGNIFICANCE[int(rng.integers(0, len(_SIGNIFICANCE)))],
        "review_status": _REVIEW[int(rng.integers(0, len(_REVIEW)))],
        "gene_symbol": None if rng.random() < 0.25 else f"SYN{chrom}G{int(rng.integers(1, 400))}",
        "clinvar_id": clinvar_id,
        "schema_version": SCHEMA_VERSION,
    }


def _placed_group(rng: np.random.Generator, chrom: str, count: int, window_bp: int, clinvar_ids: list[int]) -> dict[str, list]:
    """Windows on one chromosome plus their gnomAD, training-ClinVar and eval-ClinVar rows."""
    out: dict[str, list] = {"windows": [], "gnomad": [], "clinvar_train": [], "clinvar_eval": []}
    start = 16_000_000 + int(rng.integers(0, 1_000_000))
    for i in range(count):
        start += int(rng.integers(500, 5_000))
        seq = list(_random_dna(rng, window_bp))
        n_run = None
        if i % 8 == 3:
            a = int(rng.integers(window_bp // 4, window_bp // 2))
            n_run = (a, a + int(rng.integers(8, 24)))
            seq[n_run[0] : n_run[1]] = "N" * (n_run[1] - n_run[0])
        text = "".join(seq)
        n_gnomad = int(rng.integers(4, 13))
        spots = _spread_positions(rng, window_bp, n_gnomad + 2, n_run)
        extra = spots[n_gnomad:]
        spots = spots[:n_gnomad]
        for p in spots:
            out["gnomad"].append(_gnomad_row(rng, chrom, start + p + 1, *_allele_pair(rng, text, p)))
        for j, p in enumerate(extra):
            # On the training chromosome the first spare spot may hold a training ClinVar row and the
            # second an eval row (the first window always gets both, so no split is ever empty).
            keep = rng.random() < (0.6 if chrom == "22" else 0.3) or (i == 0 and chrom == "22")
            if not keep or (chrom != "22" and j == 1):
                continue
            bucket = "clinvar_train" if chrom == "22" and j == 0 else "clinvar_eval"
            clinvar_ids[0] += 1
            out[bucket].append(_clinvar_row(rng, chrom, start + p + 1, *_allele_pair(rng, text, p), clinvar_ids[0]))
        out["windows"].append(
            {
                "chrom": chrom,
                "start_bp": start,
                "end_bp": start + window_bp,
                "record_id": f"gnomad:{chrom}:{start + 1}-{start + window_bp}",
                "sequence": text,
                "source": "gnomad_common",
                "variant_count": len(spots),
                "variant_source": "gnomad",
            }
        )
        start += window_bp
    return out


def _carbon_rows(rng: np.random.Generator, count: int, window_bp: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        start = int(rng.integers(256, 200_000))
        source = _CARBON_SOURCES[i % len(_CARBON_SOURCES)]
        rows.append(
            {
                "record_id": f"carbon:{source}:{i:05d}",
                "source": source,
                "start_bp": start,
                "end_bp": start + window_bp,
                "sequence": _random_dna(rng, window_bp),
            }
        )
    return rows


# --- writers -----------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def _write_parquet(path: Path, rows: Sequence[dict[str, Any]], kind: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, f32, i64 = pa.string(), pa.float32(), pa.int64()
    if kind == "gnomad":
        fields = [("chrom", text), ("pos", i64), ("ref", text), ("alt", text), ("af_global", f32)]
        fields += [(f"af_{p}", f32) for p in _AF_POPS] + [("filter", text), ("schema_version", text)]
    else:
        fields = [("chrom", text), ("pos", i64), ("ref", text), ("alt", text), ("clinical_significance", text)]
        fields += [("review_status", text), ("gene_symbol", text), ("clinvar_id", i64), ("schema_version", text)]
    schema = pa.schema(fields)
    ordered = sorted(rows, key=lambda r: (int(r["chrom"]), r["pos"]))
    table = pa.Table.from_pylist(ordered, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy", version="2.6", write_statistics=True, use_dictionary=True)


# --- packaging ---------------------------------------------------------------------------------
def _count_records(path: Path) -> int | None:
    if path.suffix == ".jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except (OSError, pa.ArrowException):
            return None
    return None


def _variant_keys(path: Path) -> set[tuple[str, int, str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["chrom", "pos", "ref", "alt"])
    except (OSError, pa.ArrowException, KeyError):
        return set()
    cols = [table.column(c).to_pylist() for c in ("chrom", "pos", "ref", "alt")]
    return set(zip(*cols))


def _window_regions(path: Path) -> set[tuple[str, int, int]]:
    regions = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            if row.get("chrom") is not None:
                regions.add((str(row["chrom"]), int(row.get("start_bp", 0)), int(row.get("start_bp", 0)) + len(row["sequence"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return regions


def _leakage_checks(root: Path, files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Variant-key and window-region overlap between training and every other split."""
    keys: dict[str, set] = {}
    regions: dict[str, set] = {}
    for f in files:
        full = root / f["path"]
        if f["path"].endswith(".parquet"):
            keys.setdefault(f["split"], set()).update(_variant_keys(full))
        elif f["path"].endswith(".jsonl"):
            regions.setdefault(f["split"], set()).update(_window_regions(full))
    checks = []
    train = sorted(s for s in {f["split"] for f in files} if split_role(s) == "train")
    others = sorted(s for s in {f["split"] for f in files} if split_role(s) != "train")
    for a in train:
        for b in others:
            key_overlap = len(keys.get(a, set()) & keys.get(b, set()))
            region_overlap = sum(
                1
                for ra in regions.get(a, set())
                for rb in regions.get(b, set())
                if ra[0] == rb[0] and ra[1] < rb[2] and rb[1] < ra[2]
            )
            checks.append(
                {
                    "name": "variant_key_and_window_region_overlap",
                    "split_a": a,
                    "split_b": b,
                    "overlap_count": key_overlap,
                    "region_overlap_count": region_overlap,
                    "status": "passed" if key_overlap == 0 and region_overlap == 0 else "failed",
                }
            )
    return checks


def _data_card(manifest: dict[str, Any]) -> str:
    lines = [f"# Data card: {manifest['snapshot_id']}", "", manifest["intended_use"], "", "## Splits", ""]
    lines += ["| split | records | description |", "| --- | ---: | --- |"]
    for name in sorted(manifest["splits"]):
        spec = manifest["splits"][name]
        lines.append(f"| {name} | {spec['records']} | {spec.get('description', '')} |")
    lines += ["", f"Holdout chromosomes: {', '.join(manifest.get('holdout_chroms', [])) or 'none'}", "", "## Files", ""]
    lines += ["| path | split | records | sha256 |", "| --- | --- | ---: | --- |"]
    for f in manifest["files"]:
        lines.append(f"| {f['path']} | {f['split']} | {f['records']} | {f['sha256']} |")
    lines += ["", "## Limitations", ""] + [f"- {item}" for item in manifest["limitations"]] + [""]
    return "\n".join(lines)


def repackage(path: str | Path) -> Path:
    """Recompute file identities, record counts and every integrity file of a snapshot."""
    root = Path(path)
    manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    records: dict[str, int] = {}
    for entry in manifest["files"]:
        identity = file_identity(root, entry["path"])
        entry.update(sha256=identity["sha256"], size_bytes=identity["size_bytes"])
        count = _count_records(root / entry["path"])
        entry["records"] = count if count is not None else entry.get("records", 0)
        records[entry["split"]] = records.get(entry["split"], 0) + entry["records"]
    for name, spec in manifest["splits"].items():
        spec["records"] = records.get(name, 0)
    (root / MANIFEST_NAME).write_text(_dump(manifest), encoding="utf-8")
    (root / "dataset_package.json").write_text(_dump(manifest), encoding="utf-8")
    spec_identity = file_identity(root, SPEC_NAME) if (root / SPEC_NAME).is_file() else None
    integrity = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": _INTEGRITY_BY,
        "generated_at": BUILD_DATE,
        "snapshot_id": manifest["snapshot_id"],
        "manifest_sha256": sha256_file(root / MANIFEST_NAME),
        "files": [{k: f[k] for k in ("path", "split", "records", "sha256", "size_bytes")} for f in manifest["files"]],
        "splits": {n: {"declared_records": s["records"], "observed_records": s["records"]} for n, s in manifest["splits"].items()},
        "leakage_checks": _leakage_checks(root, manifest["files"]),
    }
    (root / "split_integrity.json").write_text(_dump(integrity), encoding="utf-8")
    inputs = [
        {
            "kind": "window_rows" if f["path"].endswith(".jsonl") else "variant_shard",
            "source_path": f["path"],
            "staged_path": f["path"],
            "split": f["split"],
            "description": f["description"],
            "sha256": f["sha256"],
            "size_bytes": f["size_bytes"],
        }
        for f in manifest["files"]
    ]
    check = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": _INPUT_CHECK_BY,
        "snapshot_id": manifest["snapshot_id"],
        "snapshot_spec": spec_identity,
        "source_count": len(inputs),
        "total_size_bytes": sum(i["size_bytes"] for i in inputs),
        "inputs": inputs,
        "ok": True,
    }
    (root / "dataset_input_check_report.json").write_text(_dump(check), encoding="utf-8")
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": _SNAPSHOT_BY,
        "generated_at": BUILD_DATE,
        "snapshot_id": manifest["snapshot_id"],
        "report_path": "dataset_snapshot_report.json",
        "snapshot_spec": spec_identity,
        "input_check_path": "dataset_input_check_report.json",
        "input_check": file_identity(root, "dataset_input_check_report.json"),
        "metadata_path": "dataset_package.json",
        "package": file_identity(root, "dataset_package.json"),
        "files": [
            {
                "path": f["path"],
                "split": f["split"],
                "records": f["records"],
                "description": f["description"],
                "source_path": f["path"],
                "source_sha256": f["sha256"],
                "source_size_bytes": f["size_bytes"],
                "sha256": f["sha256"],
                "size_bytes": f["size_bytes"],
                "already_exists": False,
            }
            for f in manifest["files"]
        ],
    }
    (root / "dataset_snapshot_report.json").write_text(_dump(report), encoding="utf-8")
    (root / "data_card.md").write_text(_data_card(manifest), encoding="utf-8")
    core = ["data_card.md", "dataset_package.json", MANIFEST_NAME, "split_integrity.json"]
    core += ["dataset_input_check_report.json", "dataset_snapshot_report.json"]
    write_sha256sums(root, core + ([SPEC_NAME] if spec_identity else []) + [f["path"] for f in manifest["files"]])
    return root


def _check_args(seed: Any, n_windows: Any, window_bp: Any) -> None:
    for name, value, minimum in (("seed", seed, 0), ("n_windows", n_windows, 1), ("window_bp", window_bp, 1024)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(f"{name} must be an int >= {minimum}, got {value!r}", details={"field": name, "value": repr(value)})


def _build(root: Path, seed: int, n_windows: int, window_bp: int) -> None:
    rng = np.random.Generator(np.random.PCG64(seed))
    ids = [100_000]
    train = _placed_group(rng, "22", n_windows, window_bp, ids)
    valid = _placed_group(rng, "20", max(2, n_windows // 8), window_bp, ids)
    hold = _placed_group(rng, "21", max(2, n_windows // 16), window_bp, ids)
    data = {
        "placed/train-gnomad-common-windows.jsonl": train["windows"],
        "carbon/source-mix-windows.jsonl": _carbon_rows(rng, max(2, n_windows // 8), window_bp),
        "gnomad/v4.1/train/variants.parquet": train["gnomad"],
        "clinvar/2024-06-01/train/variants.parquet": train["clinvar_train"],
        "placed/validation-windows.jsonl": valid["windows"],
        "gnomad/v4.1/validation/variants.parquet": valid["gnomad"],
        "placed/holdout-chr21-windows.jsonl": hold["windows"],
        "gnomad/v4.1/holdout-chr21/variants.parquet": hold["gnomad"],
        "clinvar/2024-06-01/eval/variants.parquet": train["clinvar_eval"] + valid["clinvar_eval"] + hold["clinvar_eval"],
    }
    for rel, rows in data.items():
        if rel.endswith(".jsonl"):
            _write_jsonl(root / rel, rows)
        else:
            _write_parquet(root / rel, rows, "gnomad" if rel.startswith("gnomad/") else "clinvar")
    spec = {"builder": "geno_lewm_jax.data.synthetic", "format_version": 1, "seed": seed, "n_windows": n_windows, "window_bp": window_bp}
    (root / SPEC_NAME).write_text(_dump(spec), encoding="utf-8")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "snapshot_id": f"geno-lewm-jax-synthetic-s{seed}-w{n_windows}-{window_bp}bp",
        "generated_by": _PACKAGE_BY,
        "generated_at": BUILD_DATE,
        "sources": [
            {"name": "geno_lewm_jax.data.synthetic", "revision": "1", "notes": f"seed={seed}, random uniform ACGT windows"},
        ],
        "license": "CC0-1.0",
        "preprocessing": [
            "Windows are uniform random ACGT with occasional N runs; variants are drawn from the window bases.",
            "Variant rows are sorted by chromosome and position.",
        ],
        "split_policy": "Training on chromosome 22 and unplaced windows; validation on chromosome 20; chromosome 21 held out; "
        "evaluation ClinVar rows never become training edits.",
        "splits": {name: {"records": 0, "description": text} for name, text in _SPLIT_TEXT.items()},
        "holdout_chroms": list(HOLDOUT_CHROMS),
        "leakage_checks": ["Training and non-training splits share no variant keys and no window regions."],
        "intended_use": "Tests, benchmarks and the embedded default run of geno-lewm-jax. Not biological data.",
        "limitations": ["Sequences are random: no model trained on them learns biology."],
        "files": [{"path": p, "split": s, "description": d} for p, s, d in _FILES],
    }
    (root / MANIFEST_NAME).write_text(_dump(manifest), encoding="utf-8")
    repackage(root)
    integrity = json.loads((root / "split_integrity.json").read_text(encoding="utf-8"))
    failed = [c for c in integrity["leakage_checks"] if c["status"] != "passed"]
    if failed:
        raise InvariantViolation("the synthetic builder produced overlapping splits", details={"checks": failed})


def make_synthetic_snapshot(
    path: str | Path, *, seed: int = 0, n_windows: int = DEFAULT_N_WINDOWS, window_bp: int = 4096
) -> Path:
    """Write the snapshot to ``path`` (built aside, then moved into place) and return it.

    ``n_windows`` is the number of placed training windows; validation,
    holdout and unplaced windows are derived from it. An existing ``path``
    is replaced only if it is empty or an earlier synthetic snapshot.
    """
    _check_args(seed, n_windows, window_bp)
    target = Path(path).expanduser()
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / SPEC_NAME).is_file())):
        raise InputError(
            f"{target} exists and is not a synthetic snapshot; refusing to overwrite it",
            details={"path": str(target)},
            remediation="choose an empty or new directory",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build(staging, seed, n_windows, window_bp)
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    from absl import flags

    from geno_lewm_jax.cli import run_cli

    fv = flags.FlagValues()
    flags.DEFINE_string("out", None, "Directory to write the snapshot to.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Generator seed; the output is byte-identical per seed.", flag_values=fv)
    flags.DEFINE_integer("n_windows", DEFAULT_N_WINDOWS, "Placed training windows.", flag_values=fv)
    flags.DEFINE_integer("window_bp", 4096, "Window length in bp.", flag_values=fv)

    def body() -> int:
        try:
            fv(list(sys.argv if argv is None else argv))
        except flags.Error as exc:
            raise InputError(str(exc), details={"field": "argv"}) from None
        if not fv.out:
            raise InputError("--out is required", details={"field": "out"})
        out = make_synthetic_snapshot(fv.out, seed=fv.seed, n_windows=fv.n_windows, window_bp=fv.window_bp)
        print(out)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BUILD_DATE", "DEFAULT_N_WINDOWS", "HOLDOUT_CHROMS", "SPEC_NAME", "make_synthetic_snapshot", "repackage"]
