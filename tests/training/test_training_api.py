"""The public surface of ``geno_lewm_jax.training``: reference names, JAX-native where torch-specific."""

from __future__ import annotations

import random

import geno_lewm.training as reference

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
RENAMED = {
    "TorchTrainer": "Trainer",
    "TorchTrainerBatch": "TrainerBatch",
    "TorchTrainerStepResult": "TrainerStepResult",
    "TorchDeterminismReport": "DeterminismReport",
    "configure_torch_reproducibility": "configure_reproducibility",
}
# Carbon-backed entry points that live with the main job and the bridge, not in the training core.
ELSEWHERE = {
    "encode_training_batch",
    "run_carbon_training",
    "CarbonTrainingReport",
    "CARBON_CHECKPOINT_NAME",
    "CARBON_LOG_NAME",
    "CARBON_METRICS_NAME",
    "CARBON_TRAINING_METADATA_NAME",
}


def test_every_reference_name_is_exported_or_renamed():
    ours = set(training.__all__)
    for name in reference.__all__:
        if name in ELSEWHERE:
            continue
        assert RENAMED.get(name, name) in ours, name
        assert hasattr(training, RENAMED.get(name, name)), name


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
