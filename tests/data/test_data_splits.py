"""Eval ClinVar rows and holdout chromosomes never reach training (the reference's leak is fixed)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geno_lewm_jax.data import RelEdit, TupleStream, load_snapshot, split_selection
from geno_lewm_jax.data.selection import edit_key, variant_key
from geno_lewm_jax.data.synthetic import repackage
from geno_lewm_jax.errors import DatasetError

TRAIN_PLACED = "placed/train-gnomad-common-windows.jsonl"
TRAIN_GNOMAD = "gnomad/v4.1/train/variants.parquet"
HOLDOUT_PLACED = "placed/holdout-chr21-windows.jsonl"
HOLDOUT_GNOMAD = "gnomad/v4.1/holdout-chr21/variants.parquet"
EVAL_CLINVAR = "clinvar/2024-06-01/eval/variants.parquet"


@pytest.fixture
def planted(small_copy):
    """The small snapshot with leaks planted into its training files.

    * every holdout-chromosome (21) window row is copied into the training window file,
      and their gnomAD rows into the training gnomAD shard;
    * every eval ClinVar row is copied into the training gnomAD shard, so the eval
      variants now also look like training variants.
    """
    root = small_copy
    with (root / TRAIN_PLACED).open("a") as handle:
        handle.write((root / HOLDOUT_PLACED).read_text())
    train = pq.read_table(root / TRAIN_GNOMAD)
    held = pq.read_table(root / HOLDOUT_GNOMAD)
    evals = pq.read_table(root / EVAL_CLINVAR).to_pylist()
    as_gnomad = [{**{c: None for c in train.column_names}, **{k: r[k] for k in ("chrom", "pos", "ref", "alt")},
                  "af_global": 0.2, "filter": "PASS", "schema_version": "1.0.0"} for r in evals]
    merged = pa.concat_tables([train, held, pa.Table.from_pylist(as_gnomad, schema=train.schema)])
    pq.write_table(merged, root / TRAIN_GNOMAD)
    repackage(root)
    return root


def _eval_keys(root):
    rows = pq.read_table(root / EVAL_CLINVAR).to_pylist()
    return {variant_key(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in rows}


def test_planted_leaks_never_reach_training(planted):
    snap = load_snapshot(planted)
    eval_keys = _eval_keys(planted)
    in_training_windows = [w for w in snap.windows if w.file == TRAIN_PLACED]
    assert {w.chrom for w in in_training_windows} == {"22", "21"}  # the leak is really in the file
    trained_on = [e for s in snap.shards if s.file.path == TRAIN_GNOMAD for e in s.edits]
    assert eval_keys <= {variant_key(*e.key) for e in trained_on}

    selection = split_selection(snap, "train")
    assert selection.dropped["holdout_windows"] == sum(1 for w in in_training_windows if w.chrom == "21")
    assert selection.dropped["blocked_variants"] >= sum(1 for k in eval_keys if k[0] != "21")
    assert selection.dropped["holdout_variants"] > 0
    stream = TupleStream(snap, batch_size=16, seed=0)
    seen_windows, seen_sources = set(), set()
    for batch in stream.take(2 * stream.tuples_per_epoch // 16 + 1):
        for t in batch.tuples:
            assert t.chrom != "21"
            seen_windows.add(t.record_id)
            seen_sources.add(t.source)
            window = next(w for w in snap.windows if w.record_id == t.record_id)
            assert window.role == "train"
            for e in t.edits:
                assert edit_key(window, e) not in eval_keys
    assert seen_windows == {w.record_id for w in selection.windows}
    assert "gnomad_common" in seen_sources


def test_eval_rows_inside_training_windows_are_blocked(default_snapshot):
    """The default snapshot has eval ClinVar variants inside training windows; none is usable."""
    selection = split_selection(default_snapshot, "train")
    eval_rows = [e for s in default_snapshot.shards if s.file.path == EVAL_CLINVAR for e in s.edits]
    inside = []
    for w in selection.windows:
        for e in eval_rows:
            if w.chrom == e.chrom and w.start_bp < e.pos <= w.end_bp - len(e.ref) + 1:
                inside.append((w, e.relative_to(w.start_bp, w.end_bp - 1)))
    assert len(inside) > 20
    for window, edit in inside:
        assert not selection.allows(window, edit)  # neither as a ClinVar edit nor as a synthetic coincidence
    allowed_clinvar = {variant_key(*e.key) for e in selection.clinvar}
    assert not allowed_clinvar & {variant_key(*e.key) for e in eval_rows}
    # the training ClinVar source still works
    assert selection.clinvar and all(variant_key(*e.key) not in selection.blocked for e in selection.clinvar)
    window = inside[0][0]
    free = next(p for p in range(100, 200) if window.sequence[p] != "N" and not any(k[1] == window.start_bp + p + 1 for k in selection.blocked))
    base = window.sequence[free]
    assert selection.allows(window, RelEdit(free, 0, base, "A" if base != "A" else "C"))


def test_legacy_stream_still_reproduces_the_reference_leak(planted):
    """--stream=legacy is for parity with 0.2.1, which trains on eval and holdout rows."""
    snap = load_snapshot(planted)
    eval_keys = _eval_keys(planted)
    stream = TupleStream(snap, batch_size=16, seed=0, stream="legacy")
    tuples = [t for b in stream.take(stream.tuples_per_epoch // 16) for t in b.tuples]
    windows = {w.record_id: w for w in snap.windows}
    assert any(t.chrom == "21" for t in tuples)
    assert any(edit_key(windows[t.record_id], t.edits[0]) in eval_keys for t in tuples)


def test_holdout_chroms_compare_without_chr_prefix(small_copy):
    manifest_path = small_copy / "dataset_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["holdout_chroms"] = ["chr22"]
    manifest_path.write_text(json.dumps(manifest))
    repackage(small_copy)
    snap = load_snapshot(small_copy)
    selection = split_selection(snap, "train")
    assert {w.chrom for w in selection.windows} == {None}  # only the unplaced windows remain
    manifest["holdout_chroms"] = ["chr22"]
    manifest["files"] = [f for f in manifest["files"] if not f["path"].startswith("carbon/")]
    manifest["splits"].pop("train_carbon")
    manifest_path.write_text(json.dumps(manifest))
    repackage(small_copy)
    with pytest.raises(DatasetError, match="train split has no usable windows"):
        TupleStream(load_snapshot(small_copy), batch_size=8)
