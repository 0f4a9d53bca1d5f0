"""Faults around a real (tiny, in-process) run: another run's checkpoints, --resume on nothing, a re-run
of a finished run, unreadable newest checkpoints, a full disk mid-run, SIGTERM during the compile, a
validation and a save; and the export of such a run. One finished 4-step run is shared; states come
from a hash instead of Carbon, so each run costs the tiny predictor's (cached) compile."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import jax
import pytest
from etils import epath

from fault_support import HashEncoder, assert_one_typed_line
from geno_lewm_jax.checkpointing import TMP_SUFFIX, CheckpointStore
from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.flags import config_from_argv
from job_support import REPO, job_args

ONE_DEVICE = jax.devices()[:1]  # this test process forces 8 CPU devices; a job process sees one
FOUR_STEPS = ("--max_steps=4", "--collapse_log_every_steps=2", "--checkpoint_every_steps=2", "--k_buckets=16")


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train.log").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def make_config(fault_inputs):
    def make(run_dir: Path, *extra: str):
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(REPO)
            return config_from_argv(["main", *job_args(fault_inputs, run_dir, "--compilation_cache_dir=", *FOUR_STEPS, *extra)])

    return make


@pytest.fixture(scope="module")
def train():
    from geno_lewm_jax.training.carbon import run_carbon_training

    def run(config, **kwargs):
        return run_carbon_training(config, encoder=HashEncoder(), devices=ONE_DEVICE, **kwargs)

    return run


@pytest.fixture(scope="module")
def finished_run(make_config, train, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    report = train(make_config(run_dir))
    assert report.steps_completed == 4
    return run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


# --- refused before any work ----------------------------------------------------------------------
def test_checkpoints_of_another_run_id_are_refused_and_left_as_they_are(finished_run, make_config, train, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    before = tree_digest(run_dir)
    code = run_cli(lambda: train(make_config(run_dir, "--run_id=someone-else")))
    line = assert_one_typed_line(capsys.readouterr().err, "INPUT.CHECKPOINT_MISMATCH")
    assert code == 2 and "run_id" in line
    assert tree_digest(run_dir) == before and not (run_dir / ".lock").exists()


def test_resume_on_a_fresh_run_dir_fails_cleanly_leaving_nothing(make_config, train, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = run_cli(lambda: train(make_config(run_dir, "--resume")))
    line = assert_one_typed_line(capsys.readouterr().err, "INPUT.GENERIC")
    assert code == 2 and "--resume" in line
    assert list(run_dir.iterdir()) == []  # no .lock, no empty checkpoints/


# --- re-runs and resumes ------------------------------------------------------------------------
def test_rerunning_a_finished_run_keeps_its_summary(finished_run, make_config, train, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    before = json.loads((run_dir / "metrics.json").read_text())
    checkpoints = tree_digest(run_dir / "checkpoints")
    report = train(make_config(run_dir))
    assert report.steps_completed == 4 and report.resumed_from_step == 4
    after = json.loads((run_dir / "metrics.json").read_text())
    for key in ("train_loss", "tuples_per_second", "first_step_seconds", "sample_count"):
        assert after["metrics"][key] == before["metrics"][key] is not None, key
    assert after["train_loss"] == before["train_loss"] and after["history"] == before["history"]
    assert tree_digest(run_dir / "checkpoints") == checkpoints


def test_resume_moves_a_corrupt_meta_and_an_empty_newest_dir_aside(finished_run, make_config, train, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "checkpoints" / "4" / "meta" / "metadata").write_text("{garbage")
    (run_dir / "checkpoints" / "6").mkdir()
    kept = tree_digest(run_dir / "checkpoints" / "2")
    report = train(make_config(run_dir))
    err = capsys.readouterr().err
    assert report.resumed_from_step == 2 and report.steps_completed == 4
    assert "checkpoint at step 6 is unreadable" in err and "checkpoint at step 4 is unreadable" in err
    assert "Traceback" not in err
    assert {p.name for p in (run_dir / "corrupt").iterdir()} == {"step-4", "step-6"}
    assert [e["step"] for e in events(run_dir) if e["event"] == "train.checkpoint_corrupt"] == [6, 4]
    assert [e["resumed_from_step"] for e in events(run_dir) if e["event"] == "train.resume"] == [2]
    assert tree_digest(run_dir / "checkpoints" / "2") == kept


def as_written_before_layer_stacking(run_dir: Path) -> None:
    """Mark every checkpoint of ``run_dir`` as meta schema /1 (the per-block layout before issue 14)."""
    for metadata in (run_dir / "checkpoints").glob("*/meta/metadata"):
        meta = json.loads(metadata.read_text())
        metadata.write_text(json.dumps({**meta, "schema": "geno_lewm_jax.checkpoint/1"}))


def test_checkpoints_of_the_per_block_layout_are_refused_by_resume_and_export(finished_run, make_config, train, tmp_path, capsys):
    from geno_lewm_jax.export import main as export_main

    run_dir = copy_run(finished_run, tmp_path)
    as_written_before_layer_stacking(run_dir)
    before = tree_digest(run_dir)
    code = run_cli(lambda: train(make_config(run_dir)))
    line = assert_one_typed_line(capsys.readouterr().err, "INPUT.CHECKPOINT_MISMATCH")
    assert code == 2 and "checkpoint/1" in line and "stacked" in line
    code = export_main(["export", f"--run_dir={run_dir}", f"--out={tmp_path / 'out'}", "--allow_reference_mismatch"])
    line = assert_one_typed_line(capsys.readouterr().err, "INPUT.CHECKPOINT_MISMATCH")
    assert code == 2 and "stacked" in line and not (tmp_path / "out").exists()
    assert tree_digest(run_dir) == before and not (run_dir / ".lock").exists()


# --- faults during a run ----------------------------------------------------------------------------
def test_disk_full_during_a_save_stops_the_run_and_never_logs_that_checkpoint(make_config, train, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    local = type(epath.Path("/"))
    original = local.write_text

    def write_text(self, *args, **kwargs):
        if f"/4{TMP_SUFFIX}/meta" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(local, "write_text", write_text)
    code = run_cli(lambda: train(make_config(run_dir, "--max_steps=8", "--warmup_steps=2")))
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.CHECKPOINT_SAVE_FAILED")
    assert code == 4 and "step 4" in line
    logged = [e["step"] for e in events(run_dir) if e["event"] == "train.checkpoint"]
    assert 4 not in logged and logged == [2]
    assert not (run_dir / "metrics.json").exists() and not (run_dir / ".lock").exists()
    store = CheckpointStore(run_dir / "checkpoints")
    assert store.latest_readable_meta().step == 2
    store.close()


def test_sigterm_during_the_first_compile_exits_without_waiting_for_it(make_config, train, tmp_path, monkeypatch):
    from geno_lewm_jax.training.trainer import Trainer

    run_dir = tmp_path / "run"
    release = threading.Event()
    original = Trainer.precompile

    def slow_compile(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        release.wait(timeout=30)  # a compile far longer than any scheduler's grace period
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "precompile", slow_compile)
    try:
        report = train(make_config(run_dir))
        returned_while_compiling = not release.is_set()
    finally:
        release.set()
    assert returned_while_compiling
    assert report.stopped_by_signal == "SIGTERM" and report.steps_completed == 0
    assert not (run_dir / "checkpoints").exists() and not (run_dir / ".lock").exists()


def test_sigterm_during_validation_saves_that_step_and_stops(make_config, train, tmp_path, monkeypatch):
    from geno_lewm_jax.training.trainer import Trainer

    run_dir = tmp_path / "run"
    original = Trainer.check_collapse

    def check_collapse(self, out, step, **kwargs):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, out, step, **kwargs)

    monkeypatch.setattr(Trainer, "check_collapse", check_collapse)
    report = train(make_config(run_dir))
    assert report.stopped_by_signal == "SIGTERM" and report.steps_completed == 2
    assert [e["step"] for e in events(run_dir) if e["event"] == "train.checkpoint"] == [2]
    assert json.loads((run_dir / "training_run.json").read_text())["status"] == "signalled"


def test_sigterm_during_a_save_completes_it_once_and_stops(make_config, train, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    original = CheckpointStore.save

    def save(self, step, *args, **kwargs):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(CheckpointStore, "save", save)
    report = train(make_config(run_dir))
    assert report.stopped_by_signal == "SIGTERM" and report.steps_completed == 2
    assert [e["step"] for e in events(run_dir) if e["event"] == "train.checkpoint"] == [2]
    store = CheckpointStore(run_dir / "checkpoints")
    assert store.steps() == [2] and store.latest_readable_meta().meta["step"] == 2
    store.close()


# --- export -----------------------------------------------------------------------------------------
def test_export_refuses_weights_the_reference_cannot_load(finished_run, tmp_path, capsys):
    from geno_lewm_jax.export import main as export_main

    before = tree_digest(finished_run)
    code = export_main(["export", f"--run_dir={finished_run}", f"--out={tmp_path / 'out'}"])
    line = assert_one_typed_line(capsys.readouterr().err, "DEPLOY.EXPORT_FORMAT")
    assert code == 7 and "predictor.d_hidden=64" in line and "predictor.n_self_layers=1" in line
    assert not (tmp_path / "out").exists() and tree_digest(finished_run) == before


def test_export_twice_is_byte_identical_and_names_its_step(finished_run, tmp_path, capsys):
    from geno_lewm_jax.export import main as export_main

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        code = export_main(["export", f"--run_dir={finished_run}", f"--out={out}", "--allow_reference_mismatch"])
        assert code == 0
    stdout, err = capsys.readouterr()
    assert stdout.count("exported step 4 of") == 2
    assert "warning: export: predictor.d_hidden=64" in err and "Traceback" not in err
    assert tree_digest(outs[0]) == tree_digest(outs[1])
    blob = (outs[0] / "predictor.safetensors").read_bytes()
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])


def test_export_refuses_to_skip_an_unreadable_newest_checkpoint_silently(finished_run, tmp_path, capsys):
    from geno_lewm_jax.export import main as export_main

    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "checkpoints" / "4" / "meta" / "metadata").write_text("{garbage")
    before = tree_digest(run_dir)
    code = export_main(["export", f"--run_dir={run_dir}", f"--out={tmp_path / 'out'}", "--allow_reference_mismatch"])
    line = assert_one_typed_line(capsys.readouterr().err, "RESOURCE.CHECKPOINT_CORRUPT")
    assert code == 4 and "[4]" in line and "step 2" in line
    assert tree_digest(run_dir) == before  # export never moves anything
    code = export_main(["export", f"--run_dir={run_dir}", f"--out={tmp_path / 'out'}", "--allow_reference_mismatch", "--step=2"])
    assert code == 0 and "exported step 2 of" in capsys.readouterr().out
