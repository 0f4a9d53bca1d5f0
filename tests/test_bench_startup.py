"""``bench/startup.py``'s command lines: the jobs it times are valid configs (no job runs: milliseconds).

The benchmark itself runs jobs and compiles (minutes); these tests pin down
that the commands it builds parse into the recipes they claim to time, so a
GPU session's one run is not lost to a bad flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import startup  # noqa: E402

from geno_lewm_jax.flags import config_from_argv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _config(command: list[str]):
    flags = command[command.index("geno_lewm_jax.main") + 1 :]
    return config_from_argv(["main", *flags])


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the flagfiles are relative to the repository, as the subprocess runs them


def test_defaults_time_the_tiny_job_and_the_release_compiles_on_the_cpu():
    args = startup.parse_args([])
    assert (args.job, args.device, args.standin, args.buckets) == ("tiny", "cpu", "500m", "1,2,3,4,8,16")


def test_the_tiny_job_command_is_the_embedded_default_for_one_step(in_repo, tmp_path):
    command = startup.job_command("tiny", tmp_path, tmp_path / "run", tmp_path / "cache", "cuda", "500m")
    config = _config(command)
    assert config.runtime.device == "cpu"  # the tiny recipe stays on the CPU whatever --device says
    assert (config.training.max_steps, config.optimizer.warmup_steps) == (1, 0)
    assert config.runtime.run_dir == str(tmp_path / "run")
    assert config.runtime.compilation_cache_dir == str(tmp_path / "cache")


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_release_job_command_is_the_recipe_on_the_chosen_device(in_repo, tmp_path, device):
    config = _config(startup.job_command("release", tmp_path, tmp_path / "run", tmp_path / "c", device, "500m"))
    recipe = config_from_argv(["main", "--flagfile=configs/carbon.flags"])
    assert config.runtime.device == device
    assert config.predictor == recipe.predictor and config.encoder.state_layer == recipe.encoder.state_layer
    assert config.data.dataset_dir == str(tmp_path / "snapshot") and config.encoder.model_dir == str(tmp_path / "carbon")


def test_the_tiny_standin_shrinks_only_what_the_tiny_carbon_cannot_hold(in_repo, tmp_path):
    config = _config(startup.job_command("release", tmp_path, tmp_path / "run", tmp_path / "c", "cpu", "tiny"))
    recipe = config_from_argv(["main", "--flagfile=configs/carbon.flags"])
    assert (config.predictor.d_state, config.encoder.state_layer, config.encoder.dtype) == (64, 1, "fp32")
    assert config.predictor.n_layers == recipe.predictor.n_layers and config.data.stream == recipe.data.stream


def test_an_unknown_device_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        startup.parse_args(["--device=rocm"])
    assert exit_info.value.code == 2 and "--device" in capsys.readouterr().err
