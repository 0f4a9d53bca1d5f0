"""FeatureCache: bit-exact round trips, corruption detection, crash safety and concurrent access."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.cache import CacheKey, FeatureCache
from geno_lewm_jax.errors import CacheCorruptError, InputError

ROOT = Path(__file__).resolve().parents[2]
IDENT = "carbon-test-identity"

# A writer process: appends keys start..stop in batches of `batch`, vector i = f(i). With "slow" its
# writes trickle out in small pieces, so a SIGKILL almost surely lands in the middle of an append.
WRITER = r"""
import os, sys, time, numpy as np
import bridge.cache
from bridge.cache import CacheKey, FeatureCache
path, start, stop, batch, d = sys.argv[1], *map(int, sys.argv[2:6])
def trickle(fd, data, offset=None):
    step = 16 if offset is None else 65536
    for i in range(0, len(data), step):
        piece = data[i : i + step]
        os.write(fd, piece) if offset is None else os.pwrite(fd, piece, offset + i)
        time.sleep(0.002)
if sys.argv[6:] == ["slow"]:
    bridge.cache._write_all = trickle
cache = FeatureCache(path)
def key(i): return CacheKey(f"{i:064x}", "carbon-test-identity", i % 7 or None, "l2_normalized_v2")
def vec(i): return np.random.default_rng(i).standard_normal(d).astype(np.float32)
print("ready", flush=True)
for s in range(start, stop, batch):
    ids = range(s, min(s + batch, stop))
    cache.put_many([key(i) for i in ids], [vec(i) for i in ids])
"""


def key(i: int, locus: int | None = 0, contract: str = "l2_normalized_v2", identity: str = IDENT) -> CacheKey:
    return CacheKey(f"{i:064x}", identity, locus, contract)


def writer_key(i: int) -> CacheKey:
    return key(i, i % 7 or None)


def writer_vec(i: int, d: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(d).astype(np.float32)


def start_writer(path, start, stop, batch, d, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start), str(stop), str(batch), str(d), *extra],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def test_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 96)).astype(np.float32)
    vecs[0, :4] = [np.float32(1e-45), -0.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    keys = [key(i, locus=None if i % 3 == 0 else i) for i in range(50)]
    with FeatureCache(tmp_path / "c") as cache:
        assert cache.put_many(keys, vecs) == 50
        for k, v in zip(keys, vecs):
            got = cache.get(k)
            assert got.dtype == np.float32 and got.view(np.uint32).tolist() == v.view(np.uint32).tolist()
    reopened = FeatureCache(tmp_path / "c")
    assert len(reopened) == 50 and reopened.verify() == 50
    got = np.stack(reopened.get_many(keys))
    np.testing.assert_array_equal(got.view(np.uint32), vecs.view(np.uint32))


def test_every_key_component_separates_entries(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    variants = [
        key(1),
        key(1, locus=None),
        key(1, locus=6),
        key(2),
        key(1, contract="legacy_raw_v1"),
        key(1, identity="carbon-other"),
    ]
    cache.put_many(variants, [np.full(4, i, np.float32) for i in range(len(variants))])
    assert [float(cache.get(k)[0]) for k in variants] == list(range(len(variants)))
    assert cache.put(key(1), np.full(4, 99, np.float32)) is False  # entries are immutable
    assert float(cache.get(key(1))[0]) == 0.0
    assert cache.get(key(3)) is None and key(3) not in cache and key(2) in cache


def test_bad_keys_and_vectors(tmp_path):
    with pytest.raises(InputError, match="window_sha256"):
        CacheKey("abc", IDENT, None, "l2_normalized_v2")
    with pytest.raises(InputError, match="locus"):
        key(1, locus=-2)
    with pytest.raises(InputError, match="contract"):
        key(1, contract="raw")
    cache = FeatureCache(tmp_path / "c")
    with pytest.raises(InputError, match=r"vectors\[0\]"):
        cache.put_many([key(1)], [np.array([np.nan], np.float32)])


def test_shard_rotation(tmp_path):
    cache = FeatureCache(tmp_path / "c", shard_bytes=2000)
    vecs = np.random.default_rng(1).standard_normal((30, 100)).astype(np.float32)
    for i in range(0, 30, 4):
        cache.put_many([key(j) for j in range(i, min(i + 4, 30))], vecs[i : i + 4])
    assert len(list((tmp_path / "c").glob("shard-*.f32"))) > 3
    fresh = FeatureCache(tmp_path / "c")
    np.testing.assert_array_equal(np.stack(fresh.get_many([key(j) for j in range(30)])), vecs)


@pytest.mark.parametrize("where", ["payload", "header", "crc"])
def test_flipped_byte_is_detected_naming_the_shard(tmp_path, where):
    cache = FeatureCache(tmp_path / "c")
    cache.put_many([key(i) for i in range(5)], np.ones((5, 32), np.float32))
    shard = tmp_path / "c" / "shard-00000.f32"
    record = shard.stat().st_size // 5
    offset = {"payload": 2 * record + 100, "header": 2 * record + 10, "crc": 3 * record - 1}[where]
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x01
    shard.write_bytes(bytes(data))
    for reader in (cache, FeatureCache(tmp_path / "c")):
        assert reader.get(key(1)) is not None  # other records stay readable
        with pytest.raises(CacheCorruptError, match="shard-00000.f32"):
            reader.get(key(2))
        with pytest.raises(CacheCorruptError, match="shard-00000.f32") as err:
            reader.verify()
        assert err.value.details["file"].endswith("shard-00000.f32")


def test_truncated_shard_is_detected_naming_the_shard(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    cache.put_many([key(i) for i in range(5)], np.ones((5, 32), np.float32))
    assert cache.get(key(4)) is not None  # the live reader has the shard mapped
    shard = tmp_path / "c" / "shard-00000.f32"
    os.truncate(shard, shard.stat().st_size - 7)
    with pytest.raises(CacheCorruptError, match="shard-00000.f32.*truncated"):
        FeatureCache(tmp_path / "c")
    with pytest.raises(CacheCorruptError, match="shard-00000.f32"):
        cache.get(key(4))


def test_corrupt_index_entry_is_detected(tmp_path):
    FeatureCache(tmp_path / "c").put_many([key(i) for i in range(3)], np.ones((3, 8), np.float32))
    index = tmp_path / "c" / "index.bin"
    data = bytearray(index.read_bytes())
    data[64 + 20] ^= 0xFF
    index.write_bytes(bytes(data))
    with pytest.raises(CacheCorruptError, match="index.bin"):
        FeatureCache(tmp_path / "c")


def test_foreign_directory_marker_is_refused(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cache.json").write_text('{"format": "something-else"}')
    with pytest.raises(CacheCorruptError, match="cache.json"):
        FeatureCache(tmp_path / "c")


def test_torn_tails_are_invisible_and_trimmed(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    cache.put_many([key(i) for i in range(3)], np.ones((3, 16), np.float32))
    shard, index = tmp_path / "c" / "shard-00000.f32", tmp_path / "c" / "index.bin"
    committed = shard.stat().st_size
    with open(shard, "ab") as f:  # a record written but never committed
        f.write(b"GLFR" + b"\x07" * 50)
    with open(index, "ab") as f:  # an entry cut short by a crash
        f.write(b"GLFI" + b"\x01" * 30)
    reader = FeatureCache(tmp_path / "c")
    assert len(reader) == 3 and reader.verify() == 3
    reader.put_many([key(10)], [np.full(16, 2, np.float32)])
    assert index.stat().st_size % 64 == 0
    assert reader.get(key(10)).tolist() == [2.0] * 16
    assert shard.stat().st_size == committed + (committed // 3)  # orphan bytes were replaced
    assert FeatureCache(tmp_path / "c").verify() == 4


def _uncommitted_bytes(path: Path, reader: FeatureCache) -> int:
    """Bytes on disk past the last commit (a torn index tail plus shard bytes no entry covers)."""
    index = (path / "index.bin").stat().st_size if (path / "index.bin").exists() else 0
    shards = sum(p.stat().st_size for p in path.glob("shard-*.f32"))
    committed = sum(e.length for e in reader._entries.values())
    return index % 64 + shards - committed


def test_sigkilled_writer_leaves_no_partial_entry(tmp_path):
    path, d = tmp_path / "c", 20_000
    rng = np.random.default_rng(0)
    start, torn_rounds = 0, 0
    for _ in range(4):
        proc = start_writer(path, start, start + 10_000, 3, d, "slow")
        time.sleep(float(rng.uniform(0.1, 0.4)))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        reader = FeatureCache(path)
        torn_rounds += _uncommitted_bytes(path, reader) > 0
        n = reader.verify()
        present = [i for i in range(start, start + 10_000) if writer_key(i) in reader]
        assert present == list(range(start, start + len(present)))  # a prefix: no gaps, no partial entry
        for i in present[-4:]:
            np.testing.assert_array_equal(reader.get(writer_key(i)), writer_vec(i, d))
        start += len(present)
        assert n == start
    assert torn_rounds > 0  # the kills did land mid-append
    FeatureCache(path).put_many([writer_key(10**6)], [writer_vec(1, d)])  # the next writer trims and goes on
    final = FeatureCache(path)
    assert final.verify() == start + 1 and _uncommitted_bytes(path, final) == 0


def test_reader_alongside_writers(tmp_path):
    path, d, n = tmp_path / "c", 256, 600
    cache = FeatureCache(path)
    writers = [start_writer(path, 0, n, 7, d), start_writer(path, n // 2, n + n // 2, 5, d)]
    seen = set()
    while any(w.poll() is None for w in writers):
        for i in np.random.default_rng(len(seen)).integers(0, n + n // 2, 40):
            got = cache.get(writer_key(int(i)))
            if got is not None:
                np.testing.assert_array_equal(got, writer_vec(int(i), d))
                seen.add(int(i))
    assert all(w.returncode == 0 for w in writers)
    assert len(cache) == n + n // 2 and cache.verify() == n + n // 2  # overlapping keys written once
    assert seen
