"""The vmapped sweep step against single runs, and its state: checkpoint round trip, NaN policy, schedules.

One sweep of 4 variants (2 seeds x 2 learning rates, with the weight decay, the loss
weights, the clip and the warmup swept at one value each, so that every per-variant
path is traced) trains 4 steps on the tiny shapes of ``test_training_trainer``; each
variant is compared with a plain ``Trainer`` built from its own config and seed and fed
the same batches (the single runs share one program: the session's compilation cache
compiles it once). That each variant reads its own value of a swept constant is checked
on its own, without a step.

Attention key biases are left out of the parameter check: their gradient is zero in exact
arithmetic (a softmax ignores a shift shared by all keys), so they hold only rounding
noise that Adam rescales.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from test_training_trainer import TINY, tiny_batch

from geno_lewm_jax.checkpointing import CheckpointStore
from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError, NaNLossError
from geno_lewm_jax.model import build_action_encoder, build_predictor
from geno_lewm_jax.sharding import data_mesh
from geno_lewm_jax.sweep.spec import sweep_spec
from geno_lewm_jax.sweep.trainer import VARIANT_AXIS, SweepTrainer
from geno_lewm_jax.training import Trainer, TrainerSeeds, optimizer_lr, wsd_lr_multiplier

STEPS = 4
SWEEP = (
    "seed:1,2;optimizer.lr:1e-3,3e-4;optimizer.weight_decay:0.2;training.loss_alpha:0.9;training.loss_beta:0.3;"
    "training.loss_gamma:0.2;optimizer.grad_clip:0.05;optimizer.warmup_steps:1"
)
V = 4


def modules(config):
    seed = TrainerSeeds.from_base_seed(config.seed).predictor
    return build_predictor(config, seed=seed), build_action_encoder(config, seed=seed + 1)


def batches():
    return [tiny_batch(3, seed=100 + s) for s in range(STEPS)]  # K = 3: one bucket (4) for every step


@pytest.fixture(scope="module")
def swept():
    config = load_config(overrides={**TINY, "training.nan_policy": "raise", "training.max_steps": STEPS, "sweep": SWEEP})
    spec = sweep_spec(config)
    mesh = data_mesh(jax.devices()[:1])
    trainer = SweepTrainer(*modules(config), config, STEPS, mesh=mesh)
    pairs = [modules(v.config) for v in spec.variants]
    trainer.initialize([p for p, _ in pairs], [e for _, e in pairs])
    results = [trainer.train_step(b, step) for step, b in enumerate(batches(), 1)]
    return config, spec, trainer, results


def single_run(variant):
    trainer = Trainer(*modules(variant.config), None, variant.config, STEPS, mesh=data_mesh(jax.devices()[:1]))
    return trainer, [trainer.train_step(b, step) for step, b in enumerate(batches(), 1)]


def test_each_variant_trains_what_its_single_run_trains(swept):
    _, spec, trainer, results = swept
    assert len(spec) == V and jax.tree.leaves(trainer.params)[0].shape[0] == V
    worst_loss = worst_param = 0.0
    for variant in spec.variants:
        single, single_results = single_run(variant)
        for sweep_step, one in zip(results, single_results):
            mine = sweep_step.variants[variant.index]
            assert mine.lr_multiplier == one.lr_multiplier and mine.action_count == one.action_count
            for name in ("loss", "pred_loss", "kl_reg"):
                worst_loss = max(worst_loss, abs(getattr(mine, name) - getattr(one, name)) / abs(getattr(one, name)))
        assert float(optimizer_lr(jax.tree.map(lambda x: x[variant.index], trainer.opt_state))) == float(
            optimizer_lr(single.opt_state)
        )
        stacked = jax.tree_util.tree_flatten_with_path(jax.device_get(trainer.params))[0]
        compared = 0
        for (path, leaf), want in zip(stacked, jax.tree.leaves(jax.device_get(single.params))):
            if jax.tree_util.keystr(path).endswith("['key']['bias']"):
                continue
            worst_param = max(worst_param, float(np.max(np.abs(leaf[variant.index] - want))))
            compared += 1
        assert compared > 40
    assert worst_loss <= 1e-6, worst_loss
    assert worst_param <= 1e-6, worst_param
    kernel = jax.device_get(jax.tree.leaves(trainer.params["predictor"])[-1])
    assert len({float(np.sum(kernel[i])) for i in range(V)}) == V  # the settings do differ


def test_step_results_report_means_and_every_variant(swept):
    _, spec, _, results = swept
    row = results[-1].to_dict()
    assert row["loss"] == pytest.approx(np.mean([r.loss for r in results[-1].variants]))
    assert row["loss/v3"] == results[-1].variants[3].loss and row["skipped/v3"] is False
    lr = spec.values("optimizer.lr")
    assert row["lr/v1"] == pytest.approx(lr[1] * results[-1].variants[1].lr_multiplier)


def test_the_stack_round_trips_through_a_checkpoint_and_continues_bit_for_bit(swept, tmp_path):
    _, _, trainer, _ = swept
    store = CheckpointStore(tmp_path / "checkpoints", async_save=False)
    try:
        store.save(STEPS, trainer.state, {"step": STEPS})
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainer.state)
        restored, _ = store.restore(STEPS, abstract)
    finally:
        store.close()
    batch = tiny_batch(3, seed=7)
    first = trainer.train_step(batch, STEPS)
    after_first = jax.device_get(trainer.state)
    trainer.restore_state(restored)
    again = trainer.train_step(batch, STEPS)
    assert first.to_dict() == again.to_dict()
    for a, b in zip(jax.tree.leaves(jax.device_get(trainer.state)), jax.tree.leaves(after_first)):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_variant_skips_alone_or_halts_the_stack_naming_itself(swept):
    _, _, trainer, _ = swept
    poisoned = jax.device_get(trainer.state)
    poisoned["params"] = jax.tree.map(lambda x: x.copy(), poisoned["params"])
    leaf = jax.tree.leaves(poisoned["params"]["predictor"])[0]
    leaf[2] = np.nan
    trainer.restore_state(poisoned)
    batch = tiny_batch(3, seed=8)
    try:
        trainer.nan_policy = "skip"
        result = trainer.train_step(batch, 2)
        assert [r.skipped for r in result.variants] == [i == 2 for i in range(V)]
        after = jax.device_get(trainer.state)
        assert np.array_equal(jax.tree.leaves(after["params"])[1][2], jax.tree.leaves(poisoned["params"])[1][2])
        assert not np.array_equal(jax.tree.leaves(after["params"])[1][3], jax.tree.leaves(poisoned["params"])[1][3])
        trainer.nan_policy = "raise"
        with pytest.raises(NaNLossError) as info:
            trainer.train_step(batch, 3)
        assert info.value.details["variant"] == 2 and info.value.details["step"] == 3
        for a, b in zip(jax.tree.leaves(jax.device_get(trainer.state)), jax.tree.leaves(after)):
            np.testing.assert_array_equal(a, b)  # no variant moved
    finally:
        trainer.nan_policy = "raise"


def test_each_variant_reads_its_own_schedule_and_constants():
    config = load_config(
        overrides={**TINY, "training.max_steps": 20, "sweep": "optimizer.warmup_steps:2,10;lr:1e-3,5e-4;loss_beta:0.3,0.7;"
                   "weight_decay:0,0.1;grad_clip:0,2"}
    )
    shapes = nnx.eval_shape(lambda: build_predictor(config)), nnx.eval_shape(lambda: build_action_encoder(config))
    trainer = SweepTrainer(*shapes, config, 20)  # abstract: nothing compiles
    for step in (1, 5, 17):
        multipliers, lrs = trainer._learning_rate(step)
        for variant, multiplier, lr in zip(sweep_spec(config).variants, multipliers, lrs):
            single = variant.config.optimizer
            want = wsd_lr_multiplier(step, total_steps=20, warmup_steps=single.warmup_steps, schedule=single.schedule)
            assert multiplier == want and lr == np.float32(single.lr * want)
    for field in ("training.loss_beta", "optimizer.weight_decay", "optimizer.grad_clip"):
        picked = jax.vmap(lambda _, f=field: trainer._variant_value(f), axis_name=VARIANT_AXIS)(np.zeros(32))
        np.testing.assert_array_equal(picked, np.float32(sweep_spec(config).values(field)))
    with pytest.raises(InputError):
        trainer.modules()
    with pytest.raises(InputError) as info:
        trainer.initialize([shapes[0]], [shapes[1]])
    assert info.value.details["variants"] == 32
