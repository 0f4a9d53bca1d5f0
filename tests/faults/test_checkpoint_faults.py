"""Checkpoint faults at the store: failed saves (injected at the file-system call), unreadable
checkpoints of every kind, clock skew, a clean close, and SIGKILL at random points of a save."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from fault_support import assert_one_typed_line
from geno_lewm_jax.checkpointing import TMP_SUFFIX, CheckpointStore
from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.errors import CheckpointCorruptError, CheckpointSaveError, exit_code_for

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def state_for(step: int) -> dict[str, jax.Array]:
    return {"w": jnp.arange(16.0).reshape(4, 4) + step, "n": jnp.asarray(step, jnp.int32)}


ABSTRACT = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state_for(0))


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def saved_store(directory: Path, steps: list[int]) -> CheckpointStore:
    """A store holding committed ``steps`` (each with the meta ``{"step": s}``)."""
    store = CheckpointStore(directory, keep_latest=10)
    for step in steps:
        store.save(step, state_for(step), {"step": step})
    store.wait()
    return store


def fail_writes(monkeypatch: pytest.MonkeyPatch, method: str, when, err: int = errno.ENOSPC) -> None:
    """Make local ``epath`` paths' ``<method>`` (what Orbax writes through) raise OSError(err) where ``when`` says."""
    local = type(epath.Path("/"))
    original = getattr(local, method)

    def failing(self, *args, **kwargs):
        if when(str(self)):
            raise OSError(err, os.strerror(err), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(local, method, failing)


def save_and_settle(store: CheckpointStore, step: int, committed: list[int]) -> None:
    store.save(step, state_for(step), {"step": step}, on_commit=committed.append)
    store.wait()


def _assert_failed_save_is_never_reported(store, directory, step, committed, before, capsys) -> None:
    code = run_cli(lambda: save_and_settle(store, step, committed))
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.CHECKPOINT_SAVE_FAILED")
    assert code == 4 and f"step {step}" in line
    assert step not in store.steps() and step not in store.committed_steps and step not in committed
    assert not (directory / str(step)).exists()
    assert {k: v for k, v in digest(directory).items() if not k.startswith(f"{step}{TMP_SUFFIX}")} == before
    reopened = CheckpointStore(directory)
    try:
        assert reopened.steps() == store.steps()
        assert reopened.latest_readable_meta().step == max(store.steps())
    finally:
        reopened.close()


def test_disk_full_in_the_async_meta_write_raises_and_never_reports_the_step(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "checkpoints"
    store = saved_store(directory, [100])
    before = digest(directory)
    fail_writes(monkeypatch, "write_text", lambda p: f"/200{TMP_SUFFIX}/meta" in p)
    committed: list[int] = []
    _assert_failed_save_is_never_reported(store, directory, 200, committed, before, capsys)
    store.close()


def test_disk_full_at_the_commit_rename_raises_and_never_reports_the_step(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "checkpoints"
    store = saved_store(directory, [100])
    before = digest(directory)
    fail_writes(monkeypatch, "rename", lambda p: p.endswith(f"/200{TMP_SUFFIX}"))
    _assert_failed_save_is_never_reported(store, directory, 200, [], before, capsys)
    store.close()


def read_only_below(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Every file or directory creation under ``root`` fails with EROFS (at the os calls)."""
    real_open, real_mkdir = os.open, os.mkdir

    def guarded_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and str(path).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def test_checkpoint_dir_turning_read_only_mid_run_raises_typed(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "checkpoints"
    store = saved_store(directory, [1, 2])
    before = digest(directory)
    with monkeypatch.context() as patch:
        read_only_below(patch, directory)
        _assert_failed_save_is_never_reported(store, directory, 3, [], before, capsys)
    store.close()


def test_a_later_save_after_a_failed_one_commits_normally(tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    store = saved_store(directory, [1])
    with monkeypatch.context() as patch:
        fail_writes(patch, "write_text", lambda p: f"/2{TMP_SUFFIX}/meta" in p)
        with pytest.raises(CheckpointSaveError) as failed:
            save_and_settle(store, 2, [])
    assert exit_code_for(failed.value) == 4 and failed.value.details["errno"] == errno.ENOSPC
    committed: list[int] = []
    save_and_settle(store, 3, committed)
    assert committed == [3] and store.steps() == [1, 3]
    store.close()


def test_commit_is_announced_only_once_durable(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    committed: list[int] = []
    store.save(5, state_for(5), {"step": 5}, on_commit=committed.append)
    assert committed in ([], [5])  # a save may already be settled, never announced early
    if not committed:
        assert store.committed_steps == []
    store.wait()
    assert committed == [5] and store.committed_steps == [5] and (tmp_path / "checkpoints" / "5").is_dir()
    store.close()


def _break(directory: Path, step: int, how: str) -> None:
    target = directory / str(step)
    if how == "garbage_meta":
        (target / "meta" / "metadata").write_text("{not json")
    elif how == "meta_not_an_object":
        (target / "meta" / "metadata").write_text("[1, 2, 3]")
    elif how == "meta_of_another_step":
        (target / "meta" / "metadata").write_text('{"step": 7}')
    elif how == "empty_dir":
        target.mkdir()


@pytest.mark.parametrize("how", ["garbage_meta", "meta_not_an_object", "meta_of_another_step", "empty_dir"])
def test_unreadable_newest_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path, how):
    directory = tmp_path / "run" / "checkpoints"
    saved_store(directory, [100, 200]).close()
    newest = 300 if how == "empty_dir" else 200
    _break(directory, newest, how)
    kept = digest(directory / str(newest))
    store = CheckpointStore(directory)
    seen: list[int] = []
    found = store.latest_readable_meta(on_skip=lambda step, reason: seen.append(step))
    assert (found.step, found.meta) == (100 if newest == 200 else 200, {"step": found.step})
    assert [s for s, _ in found.skipped] == seen == [newest]
    assert newest not in store.steps()
    moved = tmp_path / "run" / "corrupt" / f"step-{newest}"
    assert moved.is_dir() and digest(moved) == kept  # moved aside, bytes intact
    store.close()


def test_every_meta_corrupt_is_one_typed_error_with_all_moved_aside(tmp_path, capsys):
    directory = tmp_path / "run" / "checkpoints"
    saved_store(directory, [1, 2]).close()
    for step in (1, 2):
        _break(directory, step, "garbage_meta")
    store = CheckpointStore(directory)
    code = run_cli(lambda: store.latest_readable_meta())
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.CHECKPOINT_CORRUPT")
    assert code == 4 and "[2, 1]" in line
    assert sorted(p.name for p in (tmp_path / "run" / "corrupt").iterdir()) == ["step-1", "step-2"]
    store.close()


def test_truncated_arrays_fall_back_at_restore(tmp_path):
    directory = tmp_path / "run" / "checkpoints"
    saved_store(directory, [1, 2]).close()
    biggest = max((p for p in (directory / "2" / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    store = CheckpointStore(directory)
    restored = store.restore_latest(ABSTRACT)
    assert restored.step == 1 and [s for s, _ in restored.skipped] == [2]
    np.testing.assert_array_equal(np.asarray(restored.state["w"]), np.asarray(state_for(1)["w"]))
    store.close()


def test_readers_that_must_not_change_the_run_leave_bad_checkpoints_in_place(tmp_path):
    directory = tmp_path / "run" / "checkpoints"
    saved_store(directory, [1, 2]).close()
    _break(directory, 2, "garbage_meta")
    before = digest(tmp_path / "run")
    store = CheckpointStore(directory, async_save=False)
    found = store.latest_readable_meta(move_aside=False)
    store.close()
    assert found.step == 1 and digest(tmp_path / "run") == before
    assert not (tmp_path / "run" / "corrupt").exists()


def test_clock_skew_in_mtimes_does_not_change_the_newest_checkpoint(tmp_path):
    directory = tmp_path / "checkpoints"
    saved_store(directory, [1, 2, 3]).close()
    far_future, far_past = 4_000_000_000, 1_000_000
    for step, when in ((1, far_future), (3, far_past)):
        for path in [directory / str(step), *(directory / str(step)).rglob("*")]:
            os.utime(path, (when, when))
    store = CheckpointStore(directory)
    assert store.latest_step() == 3 and store.latest_readable_meta().step == 3
    assert store.restore_latest(ABSTRACT).step == 3
    store.close()


def test_a_store_that_never_saved_leaves_no_directory(tmp_path):
    store = CheckpointStore(tmp_path / "run" / "checkpoints")
    assert store.latest_step() is None and store.latest_readable_meta() is None
    store.close()
    store.close()  # idempotent
    assert not (tmp_path / "run").exists()


def test_closing_after_an_early_error_prints_nothing(tmp_path):
    """Orbax's start-up tmp clean-up thread used to outlive close() and fail noisily at interpreter exit."""
    directory = tmp_path / "checkpoints"
    (directory / f"7{TMP_SUFFIX}").mkdir(parents=True)  # left by a killed save: the clean-up has work to do
    code = (
        "import sys; from geno_lewm_jax.checkpointing import CheckpointStore\n"
        f"store = CheckpointStore({str(directory)!r}); store.close(); sys.exit(2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cannot schedule" not in proc.stderr, proc.stderr
    assert not (directory / f"7{TMP_SUFFIX}").exists()


def test_sigkill_at_five_random_points_of_a_save_then_resume_is_exact(tmp_path):
    """Each kill lands inside a save; the next process resumes from a checkpoint no older than the last
    one announced as committed, whose arrays and meta are exactly what that step saved."""
    directory = tmp_path / "checkpoints"
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    rng = random.Random(15)
    last_committed = 0
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, str(HERE / "checkpoint_child.py"), str(directory), "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        resumed = child.stdout.readline().split()
        assert resumed[:1] == ["resumed"], child.stderr.read()[-3000:]
        assert int(resumed[1]) >= last_committed
        saves_before_kill = rng.randint(1, 3)
        while True:
            words = child.stdout.readline().split()
            assert words, child.stderr.read()[-3000:]
            if words[0] == "committed":
                last_committed = int(words[1])
            elif words[0] == "saving" and int(words[1]) > int(resumed[1]) + saves_before_kill - 1:
                break
        signal_after = rng.uniform(0.0, 0.3)  # somewhere inside the save's blocking part or its commit
        try:
            child.wait(timeout=signal_after)
        except subprocess.TimeoutExpired:
            pass
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()
    store = CheckpointStore(directory)
    restored = store.restore_latest(ABSTRACT_CHILD)
    store.close()
    assert restored.step >= last_committed and restored.meta == {"step": restored.step, "run": "sigkill"}
    from checkpoint_child import state_for as child_state

    expected = child_state(restored.step)
    assert all(np.array_equal(np.asarray(restored.state[k]), expected[k]) for k in expected)


ABSTRACT_CHILD = {
    "w": jax.ShapeDtypeStruct((1024, 1024), jnp.float32),
    "b": jax.ShapeDtypeStruct((7,), jnp.int32),
}
