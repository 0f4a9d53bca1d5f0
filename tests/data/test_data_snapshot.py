"""load_snapshot: what it reads, and a typed error naming the file (and line) for each malformed piece."""

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geno_lewm_jax.data import load_snapshot
from geno_lewm_jax.data.synthetic import repackage
from geno_lewm_jax.errors import DatasetError, InputError

PLACED = "placed/train-gnomad-common-windows.jsonl"
GNOMAD = "gnomad/v4.1/train/variants.parquet"
CLINVAR_EVAL = "clinvar/2024-06-01/eval/variants.parquet"


def test_reads_everything(default_snapshot):
    snap = default_snapshot
    assert snap.snapshot_id.startswith("geno-lewm-jax-synthetic")
    assert snap.holdout_chroms == frozenset({"21"})
    roles = {name: info.role for name, info in snap.splits.items()}
    assert roles == {
        "train_placed_gnomad_common": "train", "train_carbon": "train", "train_gnomad_common": "train",
        "train_clinvar": "train", "validation_placed": "validation", "holdout_chr21": "holdout", "eval_clinvar": "eval",
    }
    placed = [w for w in snap.windows if w.file == PLACED]
    assert len(placed) == 128 and all(len(w.sequence) == 4096 and w.chrom == "22" for w in placed)
    assert [w.line for w in placed] == list(range(1, 129))
    assert any("N" in w.sequence for w in placed)
    carbon = [w for w in snap.windows if w.file.startswith("carbon/")]
    assert carbon and all(w.chrom is None for w in carbon)
    kinds = [s.kind for s in snap.shards]
    assert kinds.count("gnomad") == 3 and kinds.count("clinvar") == 2
    for shard in snap.shards:
        assert len(shard.edits) == shard.file.records > 0


def test_sizes_mode_skips_hashing(small_copy):
    path = small_copy / PLACED
    text = path.read_text()
    path.write_text(text.replace("A", "C", 1))  # same size, different hash
    assert load_snapshot(small_copy, verify="sizes").snapshot_id
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        load_snapshot(small_copy)
    with pytest.raises(InputError, match="verify"):
        load_snapshot(small_copy, verify="none")


def _raises(root, *, names, line=None, verify="full"):
    with pytest.raises(DatasetError) as info:
        load_snapshot(root, verify=verify)
    message = info.value.message
    assert names in message, message
    if line is not None:
        assert f"{names}:{line}:" in message, message
    return info.value


def test_missing_file(small_copy):
    (small_copy / GNOMAD).unlink()
    err = _raises(small_copy, names=str(small_copy / GNOMAD))
    assert "missing" in err.message and err.details["path"] == GNOMAD


def test_missing_manifest_and_checksums(small_copy):
    (small_copy / "SHA256SUMS").unlink()
    _raises(small_copy, names=str(small_copy / "SHA256SUMS"))
    (small_copy / "dataset_manifest.json").unlink()
    _raises(small_copy, names=str(small_copy / "dataset_manifest.json"))


def test_hash_mismatch(small_copy):
    path = small_copy / GNOMAD
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    err = _raises(small_copy, names=str(path))
    assert "sha256" in err.message and err.details["path"] == GNOMAD


def test_size_mismatch(small_copy):
    path = small_copy / PLACED
    with path.open("a") as handle:
        handle.write("\n")
    err = _raises(small_copy, names=str(path), verify="sizes")
    assert "size" in err.message


def test_bad_sha256sums_line(small_copy):
    sums = small_copy / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    lines.insert(2, "not-a-hash  placed/x.jsonl extra")
    sums.write_text("\n".join(lines) + "\n")
    _raises(small_copy, names=str(sums), line=3)


def _rewrite_line(root, rel, line_no, new_text):
    path = root / rel
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = new_text
    path.write_text("".join(lines))
    repackage(root)
    return path


def test_bad_json_row(small_copy):
    path = _rewrite_line(small_copy, PLACED, 3, '{"record_id": "x", "sequence": "ACGT",\n')
    err = _raises(small_copy, names=str(path), line=3)
    assert "invalid JSON" in err.message and err.details["line"] == 3


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda row: row.pop("record_id"), "record_id"),
        (lambda row: row.pop("chrom"), "chrom"),
        (lambda row: row.update(start_bp=-4), "start_bp"),
        (lambda row: row.update(end_bp=row["end_bp"] + 1), "end_bp"),
        (lambda row: row.update(sequence=""), "sequence"),
    ],
    ids=["no-record-id", "placed-without-chrom", "negative-start", "end-disagrees", "empty-sequence"],
)
def test_bad_window_fields(small_copy, edit, needle):
    rows = (small_copy / PLACED).read_text().splitlines()
    row = json.loads(rows[4])
    edit(row)
    path = _rewrite_line(small_copy, PLACED, 5, json.dumps(row) + "\n")
    err = _raises(small_copy, names=str(path), line=5)
    assert needle in err.message


def test_row_not_an_object(small_copy):
    path = _rewrite_line(small_copy, "carbon/source-mix-windows.jsonl", 2, "[1, 2]\n")
    _raises(small_copy, names=str(path), line=2)


def test_non_acgtn_window(small_copy):
    rows = (small_copy / PLACED).read_text().splitlines()
    row = json.loads(rows[1])
    row["sequence"] = row["sequence"][:100] + "R" + row["sequence"][101:]
    path = _rewrite_line(small_copy, PLACED, 2, json.dumps(row) + "\n")
    err = _raises(small_copy, names=str(path), line=2)
    assert "'R'" in err.message and err.details["bad_chars"] == ["R"]


def test_lowercase_window_is_canonicalised(small_copy, small_snapshot_dir):
    rows = (small_copy / PLACED).read_text().splitlines()
    row = json.loads(rows[0])
    row["sequence"] = row["sequence"].lower()
    _rewrite_line(small_copy, PLACED, 1, json.dumps(row) + "\n")
    got = load_snapshot(small_copy).windows[0]
    assert got.sequence == load_snapshot(small_snapshot_dir).windows[0].sequence


def _rewrite_table(root, rel, change):
    path = root / rel
    table = change(pq.read_table(path))
    pq.write_table(table, path)
    repackage(root)
    return path


def test_missing_parquet_column(small_copy):
    path = _rewrite_table(small_copy, GNOMAD, lambda t: t.drop_columns(["af_global"]))
    err = _raises(small_copy, names=str(path))
    assert "af_global" in err.message and err.details["missing_columns"] == ["af_global"]


def test_invalid_variant_row(small_copy):
    def bad_alt(t):
        alts = t.column("alt").to_pylist()
        alts[2] = "NNA"
        return t.set_column(t.schema.get_field_index("alt"), "alt", pa.array(alts))

    path = _rewrite_table(small_copy, GNOMAD, bad_alt)
    err = _raises(small_copy, names=str(path))
    assert err.details["row"] == 2 and "row 2" in err.message and err.details["cause"] == "INPUT.INVALID_EDIT"


def test_variant_outside_its_window(small_copy):
    """A variant that lands in a window whose bases differ from its REF does not belong there."""
    window = json.loads((small_copy / PLACED).read_text().splitlines()[0])
    first = pq.read_table(small_copy / GNOMAD).to_pylist()[0]
    offset = first["pos"] - 1 - window["start_bp"]
    wrong = "".join("C" if b != "C" else "G" for b in window["sequence"][offset : offset + 3])

    def plant(t):
        refs, alts = t.column("ref").to_pylist(), t.column("alt").to_pylist()
        refs[0], alts[0] = wrong, wrong[0]
        t = t.set_column(t.schema.get_field_index("ref"), "ref", pa.array(refs))
        return t.set_column(t.schema.get_field_index("alt"), "alt", pa.array(alts))

    path = _rewrite_table(small_copy, GNOMAD, plant)
    err = _raises(small_copy, names=str(path))
    assert "row 0" in err.message and f"{PLACED}:1" in err.message
    assert err.details["window_file"] == PLACED and err.details["window_line"] == 1


def test_empty_split(small_copy):
    empty = pq.read_table(small_copy / CLINVAR_EVAL).slice(0, 0)
    pq.write_table(empty, small_copy / CLINVAR_EVAL)
    repackage(small_copy)
    err = _raises(small_copy, names=str(small_copy / "dataset_manifest.json"))
    assert "eval_clinvar" in err.message and "empty" in err.message and CLINVAR_EVAL in err.message


def test_records_mismatch(small_copy):
    manifest_path = small_copy / "dataset_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][1]["records"] = 999
    manifest_path.write_text(json.dumps(manifest))
    err = _raises(small_copy, names=str(small_copy / manifest["files"][1]["path"]), verify="sizes")
    assert "999" in err.message


def test_manifest_problems(small_copy):
    manifest_path = small_copy / "dataset_manifest.json"
    original = json.loads(manifest_path.read_text())

    def check(mutate, needle):
        payload = json.loads(json.dumps(original))
        mutate(payload)
        manifest_path.write_text(json.dumps(payload))
        err = _raises(small_copy, names=str(manifest_path), verify="sizes")
        assert needle in err.message, err.message

    check(lambda m: m["files"][0].update(path="../escape.jsonl"), "inside the snapshot")
    check(lambda m: m["files"][0].update(split="nope"), "nope")
    check(lambda m: m.pop("splits"), "splits")
    check(lambda m: m.update(files=[]), "files")
    check(lambda m: m.update(snapshot_id=""), "snapshot_id")
    check(lambda m: m.update(holdout_chroms="21"), "holdout_chroms")
    manifest_path.write_text("{not json")
    _raises(small_copy, names=str(manifest_path), line=1)
    manifest_path.write_text("[]")
    _raises(small_copy, names=str(manifest_path))


def test_not_a_directory(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "absent"))):
        load_snapshot(tmp_path / "absent")
