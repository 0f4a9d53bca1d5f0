"""Every bad input to the main job: one typed line, its exit code, and the run dir left as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from job_support import job_args, run_main, tree_digest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(job_inputs, tmp_path_factory) -> Path:
    """A run dir holding a finished 4-step run (checkpoints, logs, summaries)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    proc = run_main(job_args(job_inputs, run_dir, "--max_steps=4", "--collapse_log_every_steps=2"))
    assert proc.returncode == 0, proc.stderr
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def _assert_one_typed_line(proc, code_prefix: str, exit_code: int, needle: str) -> None:
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    typed = [line for line in proc.stderr.splitlines() if line.startswith("error[")]
    assert len(typed) == 1, proc.stderr
    assert typed[0].startswith(f"error[{code_prefix}") and needle in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "case",
    ["missing_model_dir", "wrong_d_state", "malformed_snapshot", "another_runs_checkpoints", "invalid_flag"],
)
def test_bad_input_leaves_run_dir_untouched(case, job_inputs, finished_run, tmp_path):
    run_dir = _copy(finished_run, tmp_path)
    before = tree_digest(run_dir)
    inputs = dict(job_inputs)
    extra: list[str] = ["--max_steps=4", "--collapse_log_every_steps=2"]
    if case == "missing_model_dir":
        inputs["model_dir"] = tmp_path / "no-such-carbon"
        expect = ("INPUT", 2, "carbon.dir_missing")
    elif case == "wrong_d_state":
        extra.append("--d_state=32")
        expect = ("INPUT", 2, "d_state")
    elif case == "malformed_snapshot":
        broken = tmp_path / "snapshot"
        shutil.copytree(job_inputs["dataset_dir"], broken)
        jsonl = sorted((broken / "placed").glob("*.jsonl"))[0]
        lines = jsonl.read_text().splitlines()
        lines[1] = lines[1][: len(lines[1]) // 2]  # a truncated JSON row
        jsonl.write_text("\n".join(lines) + "\n")
        inputs["dataset_dir"] = broken
        expect = ("INPUT", 2, "placed/")
    elif case == "another_runs_checkpoints":
        extra.append("--run_id=someone-else")
        expect = ("INPUT.CHECKPOINT_MISMATCH", 2, "run_id")
    else:
        extra.append("--n_heads=3")
        expect = ("CONFIG.INVALID_VALUE", 2, "predictor.d_hidden")
    proc = run_main(job_args(inputs, run_dir, *extra))
    _assert_one_typed_line(proc, *expect)
    assert tree_digest(run_dir) == before


def test_unwritable_run_dir(job_inputs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    proc = run_main(job_args(job_inputs, blocker / "run"))
    _assert_one_typed_line(proc, "INPUT", 2, "run_dir.not_writable")
    assert blocker.read_text() == "not a directory\n"


def test_nan_in_features_raises_with_the_step_and_keeps_checkpoints(job_inputs, tmp_path, capsys):
    """A NaN in one batch's Carbon features stops the resumed run at that step with NaNLossError (exit 5)."""
    import jax
    import numpy as np
    from bridge import CarbonEncoder

    from geno_lewm_jax.cli import run_cli
    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.flags import config_from_argv
    from geno_lewm_jax.training.carbon import run_carbon_training

    run_dir = tmp_path / "run"
    config = config_from_argv(["prog", *job_args(job_inputs, run_dir, "--max_steps=8", "--collapse_log_every_steps=2")])
    one_device = jax.devices()[:1]  # this test process forces 8 CPU devices; a job process sees one
    first = run_carbon_training(config, stop_after_step=4, devices=one_device)  # interrupted: checkpoint at step 4
    assert first.steps_completed == 4
    # Steps 5.. run after resuming at step 4; the 6th batch's first source window is poisoned.
    stream = TupleStream.from_config(load_snapshot(config.data.dataset_dir), config)
    poisoned = stream.take(6)[-1].tuples[0].window

    class PoisonedCarbon:
        """The real encoder, except that rows of the poisoned source window come back NaN."""

        def __init__(self) -> None:
            self.inner = CarbonEncoder.from_config(config, device="cpu")
            self.d_state, self.contract, self.identity = self.inner.d_state, self.inner.contract, self.inner.identity

        def encode_batch(self, sequences, loci):
            out = self.inner.encode_batch(sequences, loci)
            out[[i for i, s in enumerate(sequences) if s == poisoned]] = np.nan
            return out

        def encode_batch_jax(self, sequences, loci):
            return self.encode_batch(sequences, loci)

    checkpoints_before = tree_digest(run_dir / "checkpoints")
    # what a failing run may add to: the event log and its TensorBoard curves
    appended = ("checkpoints/", "train.log", "tb/")
    others_before = {k: v for k, v in tree_digest(run_dir).items() if not k.startswith(appended)}
    log_before = (run_dir / "train.log").read_text()
    code = run_cli(lambda: run_carbon_training(config, encoder=PoisonedCarbon(), devices=one_device))
    err = capsys.readouterr().err
    assert code == 5, err
    typed = [line for line in err.splitlines() if line.startswith("error[")]
    assert len(typed) == 1 and typed[0].startswith("error[TRAINING.NAN_LOSS]") and "step 6" in typed[0], err
    assert tree_digest(run_dir / "checkpoints") == checkpoints_before  # the last good checkpoint (step 4) is intact
    others_after = {k: v for k, v in tree_digest(run_dir).items() if not k.startswith(appended)}
    assert others_after == others_before
    assert (run_dir / "train.log").read_text().startswith(log_before)  # the event log only grew
