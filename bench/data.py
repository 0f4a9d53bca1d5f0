"""Data-layer throughput against geno-lewm 0.2.1, side by side on the same snapshot.

    python bench/data.py [--batches 300] [--batch_size 64] [--resume_batch 2000]

Prints one JSON line per case: our seconds, the reference's seconds and
their ratio (reference / ours, > 1 means we are faster). The process is
pinned to one CPU core. Cases:

* ``stream_kstep``: our default stream (split-aware, shuffled, K-mix on)
  versus the reference tuple iterator (K = 1), in batches of ``batch_size``
  tuples of 4,096 bp windows; ``batches_per_s`` is ours.
* ``stream_legacy``: our legacy stream versus the same reference iterator
  (identical tuples).
* ``load``: ``load_snapshot`` (full hash verification) versus the reference
  trainer's manifest, window and shard loading.
* ``resume``: restoring a cursor at ``resume_batch`` versus the reference's
  resume, which replays ``resume_batch * batch_size`` tuples.
* ``synthetic_build``: building the default snapshot (no reference counterpart).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from geno_lewm.data.builder import (
    SOURCE_CLINVAR,
    SOURCE_GNOMAD_COMMON,
    SOURCE_SYNTHETIC_INDEL,
    SOURCE_SYNTHETIC_SNV,
    synthetic_indel_provider,
    synthetic_snv_provider,
    variant_provider,
)
from geno_lewm.training import real

from geno_lewm_jax.data import TupleStream, load_snapshot, make_synthetic_snapshot


def reference_inputs(root: Path):
    files = real._dataset_files(real._load_dataset_manifest(root))
    windows = tuple(real._load_windows(root, files))
    gnomad = tuple(real._load_gnomad_edits(root, files))
    clinvar = tuple(real._load_clinvar_edits(root, files))
    return windows, gnomad, clinvar


def reference_iterator(root: Path, seed: int):
    windows, gnomad, clinvar = reference_inputs(root)
    providers = {
        SOURCE_GNOMAD_COMMON: variant_provider(gnomad),
        SOURCE_SYNTHETIC_SNV: synthetic_snv_provider,
        SOURCE_SYNTHETIC_INDEL: synthetic_indel_provider,
        SOURCE_CLINVAR: variant_provider(clinvar),
    }
    return real._repeat_training_items(windows, providers, seed=seed, fallback_sources=real._dataset_fallback_sources(windows))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def emit(case: str, ours_s: float, ref_s: float | None, **extra) -> None:
    row = {"case": case, "ours_s": round(ours_s, 4), "reference_s": None if ref_s is None else round(ref_s, 4)}
    row["ratio"] = None if ref_s is None else round(ref_s / ours_s, 2)
    row.update(extra)
    print(json.dumps(row, sort_keys=True), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--resume_batch", type=int, default=2000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "cores_used": 1}), flush=True)
    B, n = args.batch_size, args.batches

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "snapshot"
        build_s = timed(lambda: make_synthetic_snapshot(root, seed=0))
        emit("synthetic_build", build_s, None, window_bp=4096)

        snap_box = {}
        ours_load = timed(lambda: snap_box.setdefault("s", load_snapshot(root)))
        emit("load", ours_load, timed(lambda: reference_inputs(root)))
        snap = snap_box["s"]

        for mode in ("kstep", "legacy"):
            stream = TupleStream(snap, batch_size=B, seed=0, stream=mode)
            stream.take(5)
            ours = timed(lambda: stream.take(n))
            it = reference_iterator(root, 0)
            list(itertools.islice(it, 5 * B))
            ref = timed(lambda: [list(itertools.islice(it, B)) for _ in range(n)])
            emit(f"stream_{mode}", ours, ref, batch_size=B, batches=n, batches_per_s=round(n / ours, 1),
                 reference_batches_per_s=round(n / ref, 1), window_bp=4096)

        source = TupleStream(snap, batch_size=B, seed=0)
        source._batch = args.resume_batch  # jump straight to the cursor we want to time
        cursor = source.cursor()

        def ours_resume():
            s = TupleStream(snap, batch_size=B, seed=0)
            s.restore(cursor)
            s.next_batch()

        def ref_resume():
            it = reference_iterator(root, 0)
            real._skip_training_items(it, item_count=args.resume_batch * B)
            list(itertools.islice(it, B))

        emit("resume", timed(ours_resume), timed(ref_resume), resume_batch=args.resume_batch, batch_size=B)


if __name__ == "__main__":
    main()
