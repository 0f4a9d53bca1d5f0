"""The public surface of ``geno_lewm_jax.training``: reference names, JAX-native where torch-specific."""

from __future__ import annotations

import random
import subprocess
import sys

import geno_lewm.training as reference
import pytest

import geno_lewm_jax.data.sampling as sampling
import geno_lewm_jax.training as training

SAMPLERS = (
    "DEFAULT_EDIT_TYPE_WEIGHTS",
    "DEFAULT_ROLLOUT_STEP_MIX",
    "EditTypeWeight",
    "RolloutStepWeight",
    "draw_edit_type_counts",
    "draw_rollout_step_counts",
    "sample_edit_type",
    "sample_rollout_steps",
)
# Every public name of the seed's ``geno_lewm.training`` (its ``__all__``, 51 names).
SEED_NAMES = (
    "CARBON_CHECKPOINT_NAME",
    "CARBON_LOG_NAME",
    "CARBON_METRICS_NAME",
    "CARBON_TRAINING_METADATA_NAME",
    "DEFAULT_EDIT_TYPE_WEIGHTS",
    "DEFAULT_ROLLOUT_STEP_MIX",
    "FIXTURE_CHECKPOINT_NAME",
    "FIXTURE_DATASET_MANIFEST_NAME",
    "FIXTURE_LOG_NAME",
    "FIXTURE_METRICS_NAME",
    "FIXTURE_TRAINING_METADATA_NAME",
    "MIN_CUDA_VRAM_GB",
    "REPORT_NAME",
    "REQUIRED_TRAINING_MODULES",
    "SCHEMA_VERSION",
    "AcceleratorProbe",
    "CarbonTrainingReport",
    "CollapseAlert",
    "CollapseCheck",
    "CollapseMetrics",
    "CollapseMonitor",
    "CollapseThresholds",
    "DependencyProbe",
    "EditTypeWeight",
    "FixtureTrainingReport",
    "RolloutStepWeight",
    "TorchDeterminismReport",
    "TorchTrainer",
    "TorchTrainerBatch",
    "TorchTrainerStepResult",
    "TrainerSeeds",
    "TrainingPreflightIssue",
    "TrainingPreflightReport",
    "TrainingPreflightRequest",
    "build_adamw_optimizer",
    "build_training_preflight_report",
    "compute_collapse_metrics",
    "configure_torch_reproducibility",
    "detect_collapse",
    "draw_edit_type_counts",
    "draw_rollout_step_counts",
    "encode_training_batch",
    "make_action_mask",
    "record_collapse_metrics",
    "run_carbon_training",
    "run_fixture_training",
    "sample_edit_type",
    "sample_rollout_steps",
    "set_optimizer_lr",
    "write_training_preflight_report",
    "wsd_lr_multiplier",
)
# The torch-specific names, under their JAX names here.
RENAMED = {
    "TorchTrainer": "Trainer",
    "TorchTrainerBatch": "TrainerBatch",
    "TorchTrainerStepResult": "TrainerStepResult",
    "TorchDeterminismReport": "DeterminismReport",
    "configure_torch_reproducibility": "configure_reproducibility",
    "CARBON_CHECKPOINT_NAME": "CARBON_CHECKPOINT_DIR",  # an Orbax directory, not predictor_checkpoint.pt
}
SAME_VALUE = ("CARBON_LOG_NAME", "CARBON_METRICS_NAME", "CARBON_TRAINING_METADATA_NAME", "REPORT_NAME", "SCHEMA_VERSION")


def test_every_seed_name_is_importable_here_under_its_own_or_its_jax_name():
    assert sorted(SEED_NAMES) == sorted(reference.__all__)
    ours = set(training.__all__)
    for name in SEED_NAMES:
        here = RENAMED.get(name, name)
        assert here in ours, name
        exec(f"from geno_lewm_jax.training import {here}", {})
    for name in SAME_VALUE:
        assert getattr(training, name) == getattr(reference, name), name
    assert training.CARBON_CHECKPOINT_DIR == "checkpoints"
    for name in training.__all__:
        assert getattr(training, name) is not None, name
    with pytest.raises(AttributeError):
        training.no_such_name  # noqa: B018
    from geno_lewm_jax.training.preflight import REPORT_NAME, run_training_preflight, save_report  # the job's import

    assert callable(run_training_preflight) and callable(save_report) and REPORT_NAME == training.REPORT_NAME


def test_importing_the_package_loads_nothing_and_the_main_job_names_load_no_torch():
    code = (
        "import sys, geno_lewm_jax.training\n"
        "assert 'jax' not in sys.modules and 'torch' not in sys.modules, 'import loaded a framework'\n"
        "from geno_lewm_jax.training import run_carbon_training, CarbonTrainingReport, encode_training_batch\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_samplers_are_the_data_layers_not_a_copy():
    for name in SAMPLERS:
        assert getattr(training, name) is getattr(sampling, name)


def test_sampler_draws_equal_the_reference_for_a_seed():
    for seed in (0, 1, 271828):
        ours, ref = random.Random(seed), random.Random(seed)
        assert [int(training.sample_edit_type(ours)) for _ in range(50)] == [int(reference.sample_edit_type(ref)) for _ in range(50)]
        assert [training.sample_rollout_steps(ours) for _ in range(50)] == [reference.sample_rollout_steps(ref) for _ in range(50)]
    counts = training.draw_rollout_step_counts(1000, rng=random.Random(0))
    assert counts == {1: 896, 2: 57, 3: 47}
