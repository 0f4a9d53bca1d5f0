"""TupleStream: determinism, shuffling, K-step targets, fixed shapes, cursor resume, host sharding."""

import collections
import hashlib
import json

import numpy as np
import pytest

from geno_lewm_jax.config import TrainingConfig, load_config
from geno_lewm_jax.data import TupleStream, apply_edit, apply_edits
from geno_lewm_jax.data.actions import check_disjoint, restore_length
from geno_lewm_jax.data.rollouts import EDGE_MARGIN, NEIGHBOURHOOD_BP
from geno_lewm_jax.data.tuples import KStepBuilder, LegacyBuilder
from geno_lewm_jax.errors import DatasetError, InputError, InvalidConfigError


def key(batch):
    """Everything a batch carries, in comparable form."""
    rows = tuple(
        (t.window_id, t.record_id, t.source, t.locus, tuple((e.rel_pos, int(e.edit_type), e.ref_bases, e.alt_bases) for e in t.edits), t.targets)
        for t in batch.tuples
    )
    return (batch.index, batch.k_bucket, batch.mask.tolist(), batch.loci.tolist(), rows)


@pytest.mark.parametrize("mode", ["kstep", "legacy"])
def test_resume_at_batch_37_matches_uninterrupted(default_snapshot, mode, monkeypatch):
    whole = [key(b) for b in TupleStream(default_snapshot, batch_size=32, seed=4, stream=mode).take(80)]
    first = TupleStream(default_snapshot, batch_size=32, seed=4, stream=mode)
    first.take(37)
    cursor = json.loads(json.dumps(first.cursor()))
    assert len(json.dumps(cursor)) < (8_000 if mode == "legacy" else 400)
    assert {"epoch", "position", "rng", "batch"} <= set(cursor)

    resumed = TupleStream(default_snapshot, batch_size=32, seed=4, stream=mode)
    calls = collections.Counter()
    for cls, name in ((KStepBuilder, "build"), (LegacyBuilder, "window_tuples")):
        original = getattr(cls, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counting)
    resumed.restore(cursor)
    assert calls["build"] == 0 and calls["window_tuples"] <= 1  # no replay
    assert [key(b) for b in resumed.take(43)] == whole[37:80]


def test_cursor_mid_window_and_epoch_boundary(default_snapshot):
    """Legacy cursors inside a window and exactly at an epoch end resume exactly."""
    per_epoch = TupleStream(default_snapshot, batch_size=8, stream="legacy").tuples_per_epoch
    for batch_size, cut in ((12, 5), (8, per_epoch // 8)):
        whole = [key(b) for b in TupleStream(default_snapshot, batch_size=batch_size, stream="legacy").take(cut + 3)]
        s = TupleStream(default_snapshot, batch_size=batch_size, stream="legacy")
        s.take(cut)
        r = TupleStream(default_snapshot, batch_size=batch_size, stream="legacy")
        r.restore(s.cursor())
        assert [key(b) for b in r.take(3)] == whole[cut:]


@pytest.mark.parametrize("mode", ["kstep", "legacy"])
def test_hosts_partition_the_global_batch(default_snapshot, mode):
    single = TupleStream(default_snapshot, batch_size=32, seed=1, stream=mode).take(12)
    hosts = [TupleStream(default_snapshot, batch_size=32, seed=1, stream=mode, process_index=p, process_count=4).take(12) for p in range(4)]
    for b, parts in zip(single, zip(*hosts)):
        assert [len(p.tuples) for p in parts] == [8] * 4
        assert {p.k_bucket for p in parts} == {b.k_bucket}
        assert sum((p.tuples for p in parts), ()) == b.tuples
        assert np.array_equal(np.concatenate([p.mask for p in parts]), b.mask)
    host2 = TupleStream(default_snapshot, batch_size=32, seed=1, stream=mode, process_index=2, process_count=4)
    host2.restore(TupleStream(default_snapshot, batch_size=32, seed=1, stream=mode).cursor())  # cursors are host-independent
    assert host2.rows == range(16, 24)


def test_epochs_visit_every_tuple_once_in_a_fresh_order(default_snapshot):
    s = TupleStream(default_snapshot, batch_size=64, seed=9)
    n = s.tuples_per_epoch
    epoch0 = [s.locate(q)[1:] for q in range(n)]
    epoch1 = [s.locate(n + q)[1:] for q in range(n)]
    everything = {(w, k) for w in range(len(s.selection.windows)) for k in range(s.per_window)}
    assert set(epoch0) == set(epoch1) == everything and len(epoch0) == n
    assert epoch0 != epoch1
    again = TupleStream(default_snapshot, batch_size=64, seed=9)
    assert [key(b) for b in again.take(3)] == [key(b) for b in s.take(3)]
    other = TupleStream(default_snapshot, batch_size=64, seed=10)
    assert [key(b) for b in other.take(1)] != [key(b) for b in TupleStream(default_snapshot, batch_size=64, seed=9).take(1)]
    # a tuple rebuilt in a later epoch draws fresh edits
    assert s._kstep.build(0, 0, 4) != s._kstep.build(1, 0, 4)


def test_kstep_tuples_and_batch_shapes(default_snapshot):
    stream = TupleStream(default_snapshot, batch_size=64, seed=0)
    assert stream.k_buckets == TrainingConfig().k_buckets  # the library default is the config's
    batches = stream.take(60)
    steps, follow_types, sources = collections.Counter(), collections.Counter(), collections.Counter()
    for b in batches:
        assert len(b.tuples) == 64 and b.mask.shape == (64, b.k_bucket) and b.mask.dtype == bool
        assert b.loci.dtype == np.int32 and b.loci.shape == (64,)
        drawn = max(stream._kstep.drawn_steps(*stream.locate(b.index * 64 + r)) for r in range(64))
        assert b.k_bucket == min(k for k in stream.k_buckets if k >= drawn)
        for row, t in enumerate(b.tuples):
            assert b.mask[row].tolist() == [k < t.steps for k in range(b.k_bucket)]
            assert t.window_id == hashlib.sha256(t.window.encode()).hexdigest()
            assert t.locus == t.edits[0].rel_pos == b.loci[row]
            assert len(t.targets) == t.steps and all(len(x) == len(t.window) for x in t.targets)
            assert t.targets[0] == apply_edit(t.window, t.edits[0], preserve_length=True)
            check_disjoint(t.edits)
            for k in range(t.steps):
                edited = apply_edits(t.window, t.edits[: k + 1])
                assert t.targets[k] == restore_length(edited, len(t.window), locus=t.locus)
            for e in t.edits[1:]:
                assert abs(e.rel_pos - t.locus) <= NEIGHBOURHOOD_BP
                assert EDGE_MARGIN <= e.rel_pos and e.end <= len(t.window) - EDGE_MARGIN
                assert set(e.ref_bases + e.alt_bases) <= set("ACGT")
                follow_types[int(e.edit_type)] += 1
            steps[t.steps] += 1
            sources[t.source] += 1
    total = sum(steps.values())
    assert set(steps) == {1, 2, 3} and 0.85 < steps[1] / total < 0.95
    assert set(follow_types) == {0, 1, 2, 3, 4}
    assert set(sources) == {"gnomad_common", "synthetic_snv", "synthetic_indel", "clinvar"}


def test_validation_stream_is_split_aware_even_in_legacy_configs(default_snapshot):
    config = load_config(overrides={"data.stream": "legacy", "data.batch_size": 16, "seed": 3})
    val = TupleStream.from_config(default_snapshot, config, split="validation")
    train = TupleStream.from_config(default_snapshot, config)
    assert val.stream == "kstep" and train.stream == "legacy"
    assert {w.chrom for w in val.selection.windows} == {"20"}
    assert {t.chrom for b in val.take(5) for t in b.tuples} == {"20"}
    with pytest.raises(InvalidConfigError):
        TupleStream(default_snapshot, batch_size=8, stream="legacy", split="validation")


def test_from_config_reads_the_config(default_snapshot):
    config = load_config(overrides={"data.batch_size": 12, "seed": 7, "training.k_buckets": [1, 3, 16], "runtime.num_processes": 3, "runtime.process_id": 1})
    s = TupleStream.from_config(default_snapshot, config)
    assert (s.batch_size, s.seed, s.k_buckets, s.max_len, s.rows) == (12, 7, (1, 3, 16), 16, range(4, 8))
    assert s.next_batch().k_bucket in (1, 3)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"batch_size": 10, "process_count": 4}, "data.batch_size"),
        ({"batch_size": 8, "process_count": 2, "process_index": 2}, "runtime.process_id"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"batch_size": 8, "max_len": 2}, "action.max_len"),
        ({"batch_size": 8, "k_buckets": (2, 1)}, "training.k_buckets"),
        ({"batch_size": 8, "k_buckets": (1, 2)}, "training.k_buckets"),
        ({"batch_size": 8, "stream": "fancy"}, "data.stream"),
    ],
)
def test_bad_settings(default_snapshot, kwargs, field):
    with pytest.raises(InvalidConfigError) as info:
        TupleStream(default_snapshot, **kwargs)
    assert info.value.details["field"] == field


def test_foreign_or_broken_cursors_are_refused(default_snapshot):
    s = TupleStream(default_snapshot, batch_size=8, seed=1)
    s.take(2)
    cursor = s.cursor()
    for other in (
        TupleStream(default_snapshot, batch_size=8, seed=2),
        TupleStream(default_snapshot, batch_size=16, seed=1),
        TupleStream(default_snapshot, batch_size=8, seed=1, stream="legacy"),
        TupleStream(default_snapshot, batch_size=8, seed=1, split="validation"),
    ):
        with pytest.raises(InputError):
            other.restore(cursor)
    for broken in ({}, {**cursor, "position": cursor["position"] + 1}, {**cursor, "batch": "x"}):
        with pytest.raises(InputError):
            TupleStream(default_snapshot, batch_size=8, seed=1).restore(broken)


@pytest.mark.parametrize("mode", ["kstep", "legacy"])
def test_tuple_sequence_does_not_depend_on_batch_size(default_snapshot, mode):
    big = [t for b in TupleStream(default_snapshot, batch_size=48, seed=2, stream=mode).take(4) for t in b.tuples]
    single = [b.tuples[0] for b in TupleStream(default_snapshot, batch_size=1, seed=2, stream=mode).take(len(big))]
    assert big == single


def test_window_length_limits(default_snapshot):
    with pytest.raises(DatasetError) as info:
        TupleStream(default_snapshot, batch_size=8, max_window_bp=4000)
    assert info.value.details["field"] == "action.max_window_bp" and ".jsonl:" in info.value.message
