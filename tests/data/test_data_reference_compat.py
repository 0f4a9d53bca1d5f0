"""The synthetic snapshot against geno-lewm 0.2.1: its preflight, its loader, its tuple stream."""

import itertools
import json
from pathlib import Path

import pytest
from geno_lewm.data.builder import (
    SOURCE_CLINVAR,
    SOURCE_GNOMAD_COMMON,
    SOURCE_SYNTHETIC_INDEL,
    SOURCE_SYNTHETIC_SNV,
    synthetic_indel_provider,
    synthetic_snv_provider,
    variant_provider,
)
from geno_lewm.training import preflight, real

from geno_lewm_jax.data import TupleStream, legacy_selection, load_snapshot
from geno_lewm_jax.data.synthetic import repackage


def _reference_inputs(root: Path):
    files = real._dataset_files(real._load_dataset_manifest(root))
    windows = tuple(real._load_windows(root, files))
    gnomad = tuple(real._load_gnomad_edits(root, files))
    clinvar = tuple(real._load_clinvar_edits(root, files))
    return windows, gnomad, clinvar


def _reference_items(root: Path, seed: int, n: int):
    windows, gnomad, clinvar = _reference_inputs(root)
    providers = {
        SOURCE_GNOMAD_COMMON: variant_provider(gnomad),
        SOURCE_SYNTHETIC_SNV: synthetic_snv_provider,
        SOURCE_SYNTHETIC_INDEL: synthetic_indel_provider,
        SOURCE_CLINVAR: variant_provider(clinvar),
    }
    fallbacks = real._dataset_fallback_sources(windows)
    return list(itertools.islice(real._repeat_training_items(windows, providers, seed=seed, fallback_sources=fallbacks), n))


def _edit_tuple(e):
    return (e.rel_pos, int(e.edit_type), e.ref_bases, e.alt_bases)


def test_reference_preflight_finds_no_dataset_error(default_snapshot_dir, tmp_path):
    def no_accelerator(device, required, min_bytes):
        return preflight.AcceleratorProbe(device, False, True, 0, None, None, min_bytes, "not probed", None)

    def deps(name, required):
        return preflight.DependencyProbe(name, name, required, True, None, "not probed")

    request = preflight.TrainingPreflightRequest(
        dataset_dir=default_snapshot_dir,
        carbon_model_dir=tmp_path / "carbon",
        training_config=tmp_path / "train.yaml",
        run_dir=tmp_path / "run",
        require_accelerator=False,
    )
    report = preflight.build_training_preflight_report(request, dependency_probe=deps, accelerator_probe=no_accelerator)
    dataset_issues = [i for i in report.issues if i.code.startswith("dataset.")]
    assert [i for i in dataset_issues if i.severity == "error"] == []
    assert report.dataset_snapshot_id == load_snapshot(default_snapshot_dir).snapshot_id
    assert len(report.dataset["files"]) == 9 and set(report.dataset["splits"]) >= {"eval_clinvar", "train_carbon"}


def test_reference_loader_reads_the_snapshot(default_snapshot_dir, default_snapshot):
    windows, gnomad, clinvar = _reference_inputs(default_snapshot_dir)
    ours = legacy_selection(default_snapshot)
    assert [(w.record_id, w.source, w.sequence, w.start_bp, w.chrom, w.window_id) for w in windows] == [
        (w.record_id, w.source, w.sequence, w.start_bp, w.chrom, w.window_id) for w in ours.windows
    ]
    assert [(e.chrom, e.pos, e.ref, e.alt, int(e.edit_type)) for e in gnomad] == [
        (e.chrom, e.pos, e.ref, e.alt, int(e.edit_type)) for e in ours.gnomad
    ]
    assert [(e.chrom, e.pos, e.ref, e.alt) for e in clinvar] == [(e.chrom, e.pos, e.ref, e.alt) for e in ours.clinvar]


def _assert_same_stream(ours_tuples, ref_items):
    assert len(ours_tuples) == len(ref_items)
    for i, (a, item) in enumerate(zip(ours_tuples, ref_items)):
        b = item.training_tuple
        assert a.window_id == b.window_id == item.source_window.window_id, i
        assert [_edit_tuple(e) for e in a.edits] == [_edit_tuple(e) for e in b.rel_edits], i
        assert a.targets == (b.target_window,), i
        assert (a.source, a.record_id, a.locus, a.window) == (b.edit_source, b.source_record_id, b.rel_edits[0].rel_pos, item.source_window.sequence), i


@pytest.mark.parametrize("seed,batch", [(0, 8), (11, 40)])
def test_legacy_first_1000_tuples_equal_reference(default_snapshot, default_snapshot_dir, seed, batch):
    stream = TupleStream(default_snapshot, batch_size=batch, seed=seed, stream="legacy")
    ours = [t for b in stream.take(1000 // batch) for t in b.tuples]
    _assert_same_stream(ours, _reference_items(default_snapshot_dir, seed, 1000))
    assert {t.source for t in ours} == {"gnomad_common", "synthetic_snv", "synthetic_indel", "clinvar"}


def test_legacy_matches_reference_on_unplaced_windows(small_copy):
    """Without placed windows both fall back from gnomAD/ClinVar to synthetic SNVs (across epochs)."""
    manifest_path = small_copy / "dataset_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [f for f in manifest["files"] if not f["path"].startswith("placed/")]
    manifest["splits"] = {k: v for k, v in manifest["splits"].items() if any(f["split"] == k for f in manifest["files"])}
    manifest_path.write_text(json.dumps(manifest))
    repackage(small_copy)
    stream = TupleStream(load_snapshot(small_copy), batch_size=16, seed=2, stream="legacy")
    ours = [t for b in stream.take(10) for t in b.tuples]
    _assert_same_stream(ours, _reference_items(small_copy, 2, 160))
    assert {t.source for t in ours} == {"synthetic_snv", "synthetic_indel"}
