"""Error messages of the seed API keep geno-lewm 0.2.1's key phrases (code written against it matches on them).

The seed API is every public name of ``geno_lewm_jax.training`` that mirrors a
name of ``geno_lewm.training``. For each error one of them raises where the
reference raises the same class for the same call, the table holds the call
on both sides and the phrase both messages must contain. Mirrored names with
no such error are listed, with the reason, in ``NO_SHARED_ERRORS``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geno_lewm.training as ref
import jax.numpy as jnp
import optax
import pytest
import torch
from geno_lewm.config import load_config as ref_load_config

import geno_lewm_jax.training as ours
from geno_lewm_jax.config import load_config
from geno_lewm_jax.data.actions import EditType
from geno_lewm_jax.errors import InputError
from test_training_api import RENAMED

# The Carbon main job's names: their errors are the job's typed errors and exit codes, pinned by
# tests/job and tests/faults rather than against the reference's messages.
ELSEWHERE = {
    "encode_training_batch",
    "run_carbon_training",
    "CarbonTrainingReport",
    "CARBON_CHECKPOINT_NAME",
    "CARBON_LOG_NAME",
    "CARBON_METRICS_NAME",
    "CARBON_TRAINING_METADATA_NAME",
}

META = dict(command="geno-lewm-train --fixture-smoke", commit_sha="abc1234", package_version="0.1.0")
SV = int(EditType.SV)
SNV = int(EditType.SNV)
FIXTURE_CKPT = ours.FIXTURE_CHECKPOINT_NAME


@dataclasses.dataclass(frozen=True)
class Ctx:
    """Per-side inputs: the API module, a config and a directory holding a fixture checkpoint (seed 1, step 3)."""

    api: Any
    config: Any
    other_seed_config: Any
    run_dir: Path

    def fixture(self, **kw: Any) -> Any:
        return self.api.run_fixture_training(config=self.config, run_dir=self.run_dir, **META, **kw)

    def resume(self, name: str, text: str | None = None, **kw: Any) -> Any:
        path = self.run_dir / name
        if text is not None:
            path.write_text(text)
        return self.fixture(steps=9, resume_from=path, **kw)

    def checkpoint_with(self, **fields: Any) -> str:
        payload = json.loads((self.run_dir / FIXTURE_CKPT).read_text())
        return json.dumps({**payload, **fields})


@dataclasses.dataclass(frozen=True)
class Case:
    api: str  # the mirrored public name
    label: str
    call: Callable[[Ctx], Any] | None  # the same call on both sides, or per side below
    phrase: str
    ours_call: Callable[[Ctx], Any] | None = None
    ref_call: Callable[[Ctx], Any] | None = None

    def on(self, side: str) -> Callable[[Ctx], Any]:
        own = self.ours_call if side == "ours" else self.ref_call
        return own or self.call  # type: ignore[return-value]


def metrics(api: Any) -> Any:
    return api.CollapseMetrics(*[1.0] * 7)


def _ours_optimizer_state() -> Any:
    return optax.adam(1e-3).init({"w": jnp.ones(2)})


class _Empty(torch.nn.Module):
    pass


CASES: tuple[Case, ...] = (
    # --- collapse -----------------------------------------------------------------------------
    Case("compute_collapse_metrics", "empty", lambda c: c.api.compute_collapse_metrics([], [[1.0]], kl_reg=0.0), "must contain at least one row"),
    Case("compute_collapse_metrics", "ragged", lambda c: c.api.compute_collapse_metrics([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]], kl_reg=0.0), "must be rectangular"),
    Case("compute_collapse_metrics", "bool", lambda c: c.api.compute_collapse_metrics([[True, False]], [[1.0, 2.0]], kl_reg=0.0), "prediction values must be numeric"),
    Case("compute_collapse_metrics", "strings", lambda c: c.api.compute_collapse_metrics([["a", "b"]], [[1.0, 2.0]], kl_reg=0.0), "prediction values must be numeric"),
    Case("compute_collapse_metrics", "string", lambda c: c.api.compute_collapse_metrics("ab", [[1.0]], kl_reg=0.0), "prediction must be a 2D numeric sequence"),
    Case("compute_collapse_metrics", "scalar", lambda c: c.api.compute_collapse_metrics(5.0, [[1.0]], kl_reg=0.0), "prediction must be a 2D numeric sequence"),
    Case("compute_collapse_metrics", "1D", lambda c: c.api.compute_collapse_metrics([1.0, 2.0], [[1.0, 2.0]], kl_reg=0.0), "prediction rows must be numeric sequences"),
    Case("compute_collapse_metrics", "3D", lambda c: c.api.compute_collapse_metrics([[[1.0]]], [[1.0]], kl_reg=0.0), "prediction values must be numeric"),
    Case("compute_collapse_metrics", "empty rows", lambda c: c.api.compute_collapse_metrics([[]], [[]], kl_reg=0.0), "rows must contain at least one value"),
    Case("compute_collapse_metrics", "batch", lambda c: c.api.compute_collapse_metrics([[1.0]], [[1.0], [2.0]], kl_reg=0.0), "prediction and target must have the same batch size"),
    Case("compute_collapse_metrics", "latent", lambda c: c.api.compute_collapse_metrics([[1.0]], [[1.0, 2.0]], kl_reg=0.0), "prediction and target must have the same latent dimension"),
    Case("compute_collapse_metrics", "nan prediction", lambda c: c.api.compute_collapse_metrics([[float("nan")]], [[1.0]], kl_reg=0.0), "prediction values must be finite"),
    Case("compute_collapse_metrics", "inf target", lambda c: c.api.compute_collapse_metrics([[1.0]], [[float("inf")]], kl_reg=0.0), "target values must be finite"),
    Case("compute_collapse_metrics", "nan kl", lambda c: c.api.compute_collapse_metrics([[1.0]], [[1.0]], kl_reg=float("nan")), "kl_reg values must be finite"),
    Case("compute_collapse_metrics", "text kl", lambda c: c.api.compute_collapse_metrics([[1.0]], [[1.0]], kl_reg="1"), "kl_reg values must be numeric"),
    Case("detect_collapse", "negative baseline", lambda c: c.api.detect_collapse(metrics(c.api), initial_pairwise_pred_dist_mean=-1.0), "initial_pairwise_pred_dist_mean must be non-negative"),
    Case("detect_collapse", "nan baseline", lambda c: c.api.detect_collapse(metrics(c.api), initial_pairwise_pred_dist_mean=float("nan")), "initial_pairwise_pred_dist_mean values must be finite"),
    Case("record_collapse_metrics", "negative step", lambda c: c.api.record_collapse_metrics(metrics(c.api), step=-1), "step must be a non-negative integer"),
    Case("CollapseThresholds", "zero", lambda c: c.api.CollapseThresholds(kl_reg_max=0.0), "kl_reg_max must be positive"),
    Case("CollapseThresholds", "nan", lambda c: c.api.CollapseThresholds(pred_var_to_target_var=float("nan")), "pred_var_to_target_var values must be finite"),
    Case("CollapseThresholds", "text", lambda c: c.api.CollapseThresholds(pairwise_to_initial="x"), "pairwise_to_initial values must be numeric"),
    Case("CollapseMonitor", "cadence", lambda c: c.api.CollapseMonitor(log_every_steps=0), "log_every_steps must be a positive integer"),
    Case("CollapseMonitor", "baseline", lambda c: c.api.CollapseMonitor(initial_pairwise_pred_dist_mean=-2.0), "initial_pairwise_pred_dist_mean must be non-negative"),
    Case("CollapseMonitor", "should_log", lambda c: c.api.CollapseMonitor().should_log(-1), "step must be a non-negative integer"),
    Case("CollapseMonitor", "observe step", lambda c: c.api.CollapseMonitor().observe([[1.0]], [[1.0]], kl_reg=0.0, step=-1, force=True), "step must be a non-negative integer"),
    # --- fixture trainer ----------------------------------------------------------------------
    Case("run_fixture_training", "steps", lambda c: c.fixture(steps=0), "steps must be a positive integer"),
    Case("run_fixture_training", "at or beyond", lambda c: c.fixture(steps=3, resume_from=c.run_dir / FIXTURE_CKPT), "checkpoint is already at or beyond"),
    Case("run_fixture_training", "seed", lambda c: c.api.run_fixture_training(config=c.other_seed_config, run_dir=c.run_dir, steps=9, resume_from=c.run_dir / FIXTURE_CKPT, **META), "fixture checkpoint seed does not match resolved config"),
    Case("run_fixture_training", "missing", lambda c: c.resume("absent.json"), "failed to read fixture checkpoint"),
    Case("run_fixture_training", "bad json", lambda c: c.resume("bad.json", "{not json"), "fixture checkpoint JSON is invalid"),
    Case("run_fixture_training", "not an object", lambda c: c.resume("list.json", "[]"), "fixture checkpoint must be a JSON object"),
    Case("run_fixture_training", "model kind", lambda c: c.resume("kind.json", c.checkpoint_with(model_kind="other")), "checkpoint is not a fixture smoke checkpoint"),
    Case("run_fixture_training", "step type", lambda c: c.resume("step.json", c.checkpoint_with(step="3")), "fixture checkpoint step must be an integer"),
    Case("run_fixture_training", "weight", lambda c: c.resume("weight.json", c.checkpoint_with(weight=None)), "fixture checkpoint weight must be a finite number"),
    # --- samplers -----------------------------------------------------------------------------
    Case("EditTypeWeight", "type", lambda c: c.api.EditTypeWeight(99, 1.0), "edit_type must be a supported EditType"),
    Case("EditTypeWeight", "weight", lambda c: c.api.EditTypeWeight(SNV, 0.0), "weight must be a positive finite number"),
    Case("RolloutStepWeight", "steps", lambda c: c.api.RolloutStepWeight(0, 1.0), "steps must be a positive integer"),
    Case("RolloutStepWeight", "weight", lambda c: c.api.RolloutStepWeight(1, float("inf")), "weight must be a positive finite number"),
    Case("sample_edit_type", "empty", lambda c: c.api.sample_edit_type(random.Random(0), weights=()), "edit type weights must contain at least one entry"),
    Case("sample_edit_type", "SV", lambda c: c.api.sample_edit_type(random.Random(0), weights=(c.api.EditTypeWeight(SV, 1.0),)), "SV edits are outside"),
    Case("sample_edit_type", "duplicate", lambda c: c.api.sample_edit_type(random.Random(0), weights=(c.api.EditTypeWeight(SNV, 1.0),) * 2), "edit type weights contain duplicate edit types"),
    Case("sample_rollout_steps", "empty", lambda c: c.api.sample_rollout_steps(random.Random(0), mix=()), "rollout step mix must contain at least one entry"),
    Case("sample_rollout_steps", "duplicate", lambda c: c.api.sample_rollout_steps(random.Random(0), mix=(c.api.RolloutStepWeight(1, 1.0),) * 2), "rollout step mix contains duplicate step counts"),
    Case("draw_edit_type_counts", "n", lambda c: c.api.draw_edit_type_counts(-1, rng=random.Random(0)), "n must be a non-negative integer"),
    Case("draw_rollout_step_counts", "n", lambda c: c.api.draw_rollout_step_counts(True, rng=random.Random(0)), "n must be a non-negative integer"),
    # --- trainer helpers ----------------------------------------------------------------------
    Case("TrainerSeeds", "seed", lambda c: c.api.TrainerSeeds.from_base_seed(-1), "seed must be a non-negative integer"),
    Case("make_action_mask", "empty", lambda c: c.api.make_action_mask([]), "rel_edits must contain at least one batch item"),
    Case("make_action_mask", "text row", lambda c: c.api.make_action_mask(["ab"]), "rel_edits entries must be sequences"),
    Case("make_action_mask", "empty row", lambda c: c.api.make_action_mask([[1], []]), "each training batch item must include at least one edit"),
    Case("wsd_lr_multiplier", "step", lambda c: c.api.wsd_lr_multiplier(0, total_steps=10, warmup_steps=0), "step must be a positive integer"),
    Case("wsd_lr_multiplier", "total", lambda c: c.api.wsd_lr_multiplier(1, total_steps=0, warmup_steps=0), "total_steps must be a positive integer"),
    Case("wsd_lr_multiplier", "warmup", lambda c: c.api.wsd_lr_multiplier(1, total_steps=10, warmup_steps=-1), "warmup_steps must be a non-negative integer"),
    Case("wsd_lr_multiplier", "horizon", lambda c: c.api.wsd_lr_multiplier(11, total_steps=10, warmup_steps=0), "step cannot exceed total_steps"),
    Case("wsd_lr_multiplier", "schedule", lambda c: c.api.wsd_lr_multiplier(1, total_steps=10, warmup_steps=0, schedule="linear"), "unsupported learning-rate schedule"),
    Case(
        "set_optimizer_lr", "horizon", None, "step cannot exceed total_steps",
        ours_call=lambda c: ours.set_optimizer_lr(_ours_optimizer_state(), step=3, total_steps=2, warmup_steps=0),
        ref_call=lambda c: ref.set_optimizer_lr(object(), step=3, total_steps=2, warmup_steps=0),
    ),
    Case(
        "set_optimizer_lr", "no learning rate", None, "optimizer must expose",
        ours_call=lambda c: ours.set_optimizer_lr(_ours_optimizer_state(), step=1, total_steps=2, warmup_steps=0),
        ref_call=lambda c: ref.set_optimizer_lr(object(), step=1, total_steps=2, warmup_steps=0),
    ),
    Case(
        "build_adamw_optimizer", "not adamw", None, "supports AdamW only",
        ours_call=lambda c: ours.build_adamw_optimizer(_sgd(c.config), {"w": jnp.ones((2, 2))}),
        ref_call=lambda c: ref.build_adamw_optimizer(predictor=torch.nn.Linear(2, 2), action_encoder=_Empty(),
                                                     config=ref_load_config({"optimizer": {"name": "sgd-momentum"}})),
    ),
    Case(
        "build_adamw_optimizer", "no parameters", None, "no trainable predictor/action-encoder parameters found",
        ours_call=lambda c: ours.build_adamw_optimizer(c.config, {}),
        ref_call=lambda c: ref.build_adamw_optimizer(predictor=_Empty(), action_encoder=_Empty(), config=c.config),
    ),
)


def _sgd(config: Any) -> Any:
    """A config-shaped object naming another optimizer (the validated Config refuses one)."""
    return types.SimpleNamespace(optimizer=dataclasses.replace(config.optimizer, name="sgd-momentum"))


# Mirrored names for which the reference raises no error of its own that a call here shares.
NO_SHARED_ERRORS = {
    **dict.fromkeys(
        ("DEFAULT_EDIT_TYPE_WEIGHTS", "DEFAULT_ROLLOUT_STEP_MIX", "FIXTURE_CHECKPOINT_NAME", "FIXTURE_DATASET_MANIFEST_NAME",
         "FIXTURE_LOG_NAME", "FIXTURE_METRICS_NAME", "FIXTURE_TRAINING_METADATA_NAME", "MIN_CUDA_VRAM_GB",
         "REPORT_NAME", "REQUIRED_TRAINING_MODULES", "SCHEMA_VERSION"),
        "a constant",
    ),
    **dict.fromkeys(
        ("CollapseAlert", "CollapseCheck", "CollapseMetrics", "FixtureTrainingReport", "AcceleratorProbe",
         "DependencyProbe", "TrainingPreflightIssue", "TrainingPreflightReport", "TrainingPreflightRequest"),
        "a plain record: the reference validates nothing",
    ),
    **dict.fromkeys(
        ("build_training_preflight_report", "write_training_preflight_report"),
        "the reference reports problems as issues and raises nothing of its own",
    ),
    **dict.fromkeys((here for name, here in RENAMED.items() if name not in ELSEWHERE), "torch-specific in the reference; JAX-native here with its own contract"),
}


def _mirrored() -> set[str]:
    return {RENAMED.get(name, name) for name in ref.__all__ if name not in ELSEWHERE}


def test_every_mirrored_name_is_in_the_table_or_has_a_reason():
    tabled = {case.api for case in CASES}
    assert tabled | set(NO_SHARED_ERRORS) == _mirrored()
    assert not tabled & set(NO_SHARED_ERRORS)


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ctx]:
    out = {}
    for side, api, load in (("ours", ours, lambda seed: load_config(overrides={"seed": seed})),
                            ("ref", ref, lambda seed: ref_load_config({"seed": seed}))):
        run_dir = tmp_path_factory.mktemp(side)
        config = load(1)
        api.run_fixture_training(config=config, run_dir=run_dir, steps=3, **META)
        out[side] = Ctx(api=api, config=config, other_seed_config=load(2), run_dir=run_dir)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.api}-{c.label}")
def test_message_keeps_the_reference_phrase(case, contexts):
    with pytest.raises(Exception) as want:
        case.on("ref")(contexts["ref"])
    assert type(want.value).__name__ == "InputError", want.value
    assert case.phrase in want.value.message, (case.phrase, want.value.message)  # the table quotes the reference
    with pytest.raises(InputError) as got:
        case.on("ours")(contexts["ours"])
    assert case.phrase in got.value.message, got.value.message
