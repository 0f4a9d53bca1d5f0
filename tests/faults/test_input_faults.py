"""Bad inputs a new user types: help flags, a missing config file, absurd horizons and batches, and
mistyped paths next to --bootstrap_missing. All in-process, through each entry point's own code path."""

from __future__ import annotations

from pathlib import Path

import pytest

from fault_support import assert_one_typed_line
from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.flags import config_from_argv
from job_support import REPO, job_args


def _entry_main(name: str):
    if name == "geno_lewm_jax.main":
        from geno_lewm_jax.main import main
    elif name == "geno_lewm_jax.export":
        from geno_lewm_jax.export import main
    else:
        from bridge.encode import main
    return main


@pytest.mark.parametrize("flag", ["--help", "--helpfull", "-h", "--helpshort"])
@pytest.mark.parametrize("entry", ["geno_lewm_jax.main", "geno_lewm_jax.export", "bridge.encode"])
def test_help_flags_print_the_flags_and_exit_0(entry, flag, capsys):
    code = _entry_main(entry)([entry, "--flagfile=configs/tiny.flags", flag, "--no_such_flag=1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == "" and "Traceback" not in out
    assert "--run_dir" in out and ("absl.flags:" in out) == (flag == "--helpfull")
    if entry != "geno_lewm_jax.export":
        assert "--batch_size" in out and "[data.batch_size]" in out


def test_a_missing_config_yaml_exits_2(tmp_path, capsys):
    code = run_cli(lambda: config_from_argv(["main", f"--config_yaml={tmp_path / 'nope.yaml'}"]))
    line = assert_one_typed_line(capsys.readouterr().err, "CONFIG.FILE_NOT_FOUND")
    assert code == 2 and "nope.yaml" in line


def test_an_absurd_horizon_is_a_config_error_naming_the_field(capsys):
    code = run_cli(lambda: config_from_argv(["main", "--max_steps=99999999999999999999"]))
    line = assert_one_typed_line(capsys.readouterr().err, "CONFIG.INVALID_VALUE")
    assert code == 2 and "training.max_steps" in line


def _tiny_config(inputs, run_dir: Path, *extra: str):
    return config_from_argv(["main", *job_args(inputs, run_dir, "--compilation_cache_dir=", *extra)])


def test_a_batch_that_cannot_fit_is_refused_before_the_stream_materialises_it(fault_inputs, tmp_path, monkeypatch, capsys):
    """--batch_size=100000000 used to grow memory at ~130 MB/s inside stream.take with no output."""
    import geno_lewm_jax.training.carbon as carbon
    from geno_lewm_jax.data import TupleStream
    from geno_lewm_jax.job import run_job

    monkeypatch.chdir(REPO)

    def never(*_a, **_k):
        raise AssertionError("work started")

    monkeypatch.setattr(carbon, "run_carbon_training", never)
    monkeypatch.setattr(TupleStream, "take", never)
    config = _tiny_config(fault_inputs, tmp_path / "run", "--batch_size=100000000")
    code = run_cli(lambda: run_job(config))
    err = capsys.readouterr().err
    line = assert_one_typed_line(err, "INPUT.GENERIC")
    assert code == 2 and "batch_size_too_large (data.batch_size)" in line
    assert "data.batch_size=100000000 needs at least" in err
    assert not (tmp_path / "run").exists()


def _probe(platform: str, memory: int | None, devices: int = 1):
    from geno_lewm_jax.training.preflight.report import AcceleratorProbe

    return AcceleratorProbe(
        requested_device="cpu" if platform == "cpu" else "cuda", required=True, available=True, device_count=devices,
        device_name="probe", total_memory_bytes=memory, min_memory_bytes=0, reason="", issue_code=None,
        platform=platform, torch_cuda_available=None,
    )


@pytest.mark.parametrize(
    "batch, platform, device_memory, refused",
    [
        (8, "cpu", None, False),  # the embedded default
        (20000, "cpu", None, True),  # the issue's 90-second silent run, on an 8 GiB host
        (256, "gpu", 80 << 30, False),  # a real GPU batch
        (20000, "gpu", 16 << 30, True),  # the step alone overflows one 16 GiB GPU
    ],
)
def test_batch_memory_estimate_refuses_only_what_cannot_fit(fault_inputs, tmp_path, monkeypatch, batch, platform, device_memory, refused):
    from geno_lewm_jax.training.preflight.memory import inspect_batch_memory, snapshot_window_bp
    from geno_lewm_jax.training.preflight.report import IssueLog

    monkeypatch.chdir(REPO)
    config = _tiny_config(fault_inputs, tmp_path / "run", f"--batch_size={batch}", "--d_hidden=256", "--ffn_dim=256")
    assert 1000 < snapshot_window_bp(fault_inputs["dataset_dir"], config.action.max_window_bp) <= config.action.max_window_bp
    log = IssueLog()
    inspect_batch_memory(config, fault_inputs["dataset_dir"], _probe(platform, device_memory), log, host_available=8 << 30)
    assert [i.path for i in log.issues] == (["data.batch_size"] if refused else [])


# --- --bootstrap_missing with a mistyped path --------------------------------------------------------
def _bootstrap_config(fault_inputs, tmp_path: Path, **paths: Path):
    inputs = {**fault_inputs, **paths}
    return _tiny_config(inputs, tmp_path / "run", "--bootstrap_missing")


@pytest.mark.parametrize("field", ["model_dir", "dataset_dir"])
def test_a_mistyped_input_path_is_an_error_not_a_silent_stand_in(fault_inputs, tmp_path, monkeypatch, capsys, field):
    from geno_lewm_jax.job import bootstrap_inputs

    monkeypatch.chdir(REPO)
    typo = tmp_path / "data" / ("Carbon-500M-typo" if field == "model_dir" else "genolewm-snapshot-typo")
    config = _bootstrap_config(fault_inputs, tmp_path, **{field: typo})
    code = run_cli(lambda: bootstrap_inputs(config))
    line = assert_one_typed_line(capsys.readouterr().err, "INPUT.GENERIC")
    dotted = "encoder.model_dir" if field == "model_dir" else "data.dataset_dir"
    assert code == 2 and dotted in line and str(typo) in line
    assert not typo.exists() and not typo.parent.exists()


def test_stand_ins_are_created_in_the_cache_with_a_warning_naming_the_path(fault_inputs, tmp_path, monkeypatch, capsys):
    import geno_lewm_jax.job as job

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(job, "BOOTSTRAP_ROOT", str(tmp_path / "cache"))
    target = tmp_path / "cache" / "standin-carbn"  # a typo inside the cache: allowed, but loud
    job.bootstrap_inputs(_bootstrap_config(fault_inputs, tmp_path, model_dir=target))
    err = capsys.readouterr().err
    assert f"warning: --bootstrap_missing: creating a RANDOM stand-in Carbon checkpoint (not a trained model) in {target}" in err
    assert (target / "config.json").is_file()


def test_tiny_flags_keeps_its_inputs_where_the_bootstrap_creates_them(monkeypatch):
    import geno_lewm_jax.job as job

    monkeypatch.chdir(REPO)
    config = job.expand_paths(config_from_argv(["main", "--flagfile=configs/tiny.flags"]))
    root = Path(job.BOOTSTRAP_ROOT).expanduser()
    assert config.runtime.bootstrap_missing
    for value, name in ((config.encoder.model_dir, job.STANDIN_MODEL_NAME), (config.data.dataset_dir, job.SYNTHETIC_DATASET_NAME)):
        assert Path(value).is_relative_to(root) and Path(value).name.startswith(name)


def test_the_horizon_limit_is_the_int32_step_count():
    from geno_lewm_jax.config import MAX_STEPS_LIMIT
    from geno_lewm_jax.errors import InvalidConfigError

    assert MAX_STEPS_LIMIT == 2**31 - 1
    assert config_from_argv(["main", f"--max_steps={MAX_STEPS_LIMIT}"]).training.max_steps == MAX_STEPS_LIMIT
    with pytest.raises(InvalidConfigError, match="training.max_steps"):
        config_from_argv(["main", f"--max_steps={MAX_STEPS_LIMIT + 1}"])
