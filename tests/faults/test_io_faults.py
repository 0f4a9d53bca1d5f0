"""I/O faults outside the checkpoints: a full disk under the event log and the feature cache (injected at
the os call), a torn log line, and the run-dir lock on every exit path."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

import bridge.cache
from bridge.cache import CacheKey, FeatureCache
from fault_support import assert_one_typed_line
from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.errors import InputError, RunDirLockedError
from geno_lewm_jax.events import EventLog
from geno_lewm_jax.run_dir import LOCK_NAME, RunDirLock


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDiskFile:
    """A text handle whose writes and flushes fail as on a full disk (what the OS reports to the log)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        enospc()
        return 0

    flush = write

    def close(self) -> None:
        self.inner.close()


def test_disk_full_on_the_event_log_is_one_typed_line_and_keeps_earlier_events(tmp_path, capsys):
    path = tmp_path / "train.log"
    log = EventLog(path)
    log.emit("train.start", step=0)
    log.emit("train.progress", step=1)
    before = path.read_bytes()
    log._handle = FullDiskFile(log._handle)  # the file system fills up under the open log
    code = run_cli(lambda: log.emit("train.progress", step=2))
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.EVENT_LOG_WRITE_FAILED")
    assert code == 4 and "train.log" in line and "No space left" in line
    log.emit("train.end")  # a closed log drops later events instead of raising again
    log.close()
    assert path.read_bytes() == before


def test_a_torn_last_log_line_is_ended_before_the_next_run_appends(tmp_path):
    path = tmp_path / "train.log"
    path.write_text('{"event": "train.start", "step": 0}\n{"event": "train.progr')  # killed mid-write
    log = EventLog(path)
    log.emit("train.resume", step=0)
    log.close()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"event": "train.progr'
    assert json.loads(lines[2])["event"] == "train.resume"


def test_an_unopenable_event_log_is_a_typed_error(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    code = run_cli(lambda: EventLog(blocker / "train.log"))
    assert code == 4
    assert_one_typed_line(capsys.readouterr().err, "RESOURCE.EVENT_LOG_WRITE_FAILED")


def _key(i: int) -> CacheKey:
    return CacheKey(f"{i:064x}", "carbon-fault-identity", i, "l2_normalized_v2")


def _vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(8).astype(np.float32)


@pytest.mark.parametrize("where", ["shard", "index"])
def test_disk_full_on_the_feature_cache_is_typed_and_leaves_it_consistent(tmp_path, monkeypatch, capsys, where):
    cache = FeatureCache(tmp_path / "cache", durable=False)
    cache.put_many([_key(i) for i in range(4)], [_vec(i) for i in range(4)])
    real_write_all = bridge.cache._write_all
    calls = {"n": 0}

    def write_all(fd, data, offset=None):
        calls["n"] += 1
        # put_many writes the shard (with an offset), then the index entries: fail the chosen one half-way
        if (offset is not None) == (where == "shard"):
            real_write_all(fd, data[: len(data) // 2], offset)
            enospc()
        real_write_all(fd, data, offset)

    with monkeypatch.context() as patch:
        patch.setattr(bridge.cache, "_write_all", write_all)
        code = run_cli(lambda: cache.put_many([_key(i) for i in range(4, 8)], [_vec(i) for i in range(4, 8)]))
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.CACHE_WRITE_FAILED")
    assert code == 4 and "cache" in line and calls["n"] >= 1
    reader = FeatureCache(tmp_path / "cache", durable=False)
    # Each index entry is a commit: whole entries written before the failure stand, every one correct.
    seen = [reader.get(_key(i)) for i in range(8)]
    assert all(np.array_equal(seen[i], _vec(i)) for i in range(4))
    assert all(v is None or np.array_equal(v, _vec(i)) for i, v in enumerate(seen))
    assert len(reader) == sum(v is not None for v in seen) and (where == "index" or len(reader) == 4)
    reader.put_many([_key(i) for i in range(4, 8)], [_vec(i) for i in range(4, 8)])  # a retry trims the torn tail
    again = FeatureCache(tmp_path / "cache", durable=False)
    assert len(again) == 8 and again.verify() == 8
    again.close()
    for c in (cache, reader):
        c.close()


def test_the_run_dir_lock_leaves_no_file_after_a_failure(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(InputError):
        with RunDirLock(run_dir):
            assert (run_dir / LOCK_NAME).exists()
            raise InputError("a failure inside the run")
    assert not (run_dir / LOCK_NAME).exists()
    RunDirLock(run_dir).acquire().release()  # and the next run gets it
    assert list(run_dir.iterdir()) == []


def test_a_second_holder_is_refused_while_the_first_holds_the_lock(tmp_path, capsys):
    run_dir = tmp_path / "run"
    held = RunDirLock(run_dir).acquire()
    code = run_cli(lambda: RunDirLock(run_dir).acquire())
    assert code == 4
    assert_one_typed_line(capsys.readouterr().err, RunDirLockedError.code)
    held.release()
    assert not (run_dir / LOCK_NAME).exists()


def test_a_lock_file_replaced_between_open_and_lock_is_retried(tmp_path, monkeypatch):
    """The holder removed .lock (and another run made a new one) after we opened it: we must lock the new one."""
    import fcntl

    import geno_lewm_jax.run_dir as run_dir_module

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real_flock, raced = fcntl.flock, []

    def flock(fd, op):
        if not raced:
            raced.append(fd)
            (run_dir / LOCK_NAME).unlink()
            (run_dir / LOCK_NAME).write_text("")  # a new file, a new inode
        return real_flock(fd, op)

    monkeypatch.setattr(run_dir_module.fcntl, "flock", flock)
    lock = RunDirLock(run_dir).acquire()
    assert raced and os.fstat(lock._handle.fileno()).st_ino == os.stat(run_dir / LOCK_NAME).st_ino
    lock.release()
    assert not (run_dir / LOCK_NAME).exists()
