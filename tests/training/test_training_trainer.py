"""The jitted Trainer against geno-lewm 0.2.1's ``TorchTrainer``, plus buckets, devices and the NaN policy.

Parity runs start both trainers from the same randomised weights (every
parameter non-zero, copied through ``geno_lewm_jax.interop``) and feed both the
same 20 batches of random unit-vector states and targets and random SNVs.

Parameters compared: every tensor within 1e-4 relative (norm of the difference
over the norm of the reference tensor), except the directions that get no
gradient in exact arithmetic, where Adam only amplifies rounding noise in
either framework: attention key biases (a softmax ignores a shift shared by
all keys) and, at K=1, the query and key projections of the state->action
blocks (a softmax over a single key is 1). Those are checked through the
function instead: both models predict the same probe batch within 1e-5.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from geno_lewm.action import ActionEncoder as RefActionEncoder
from geno_lewm.action import EditType, RelEdit
from geno_lewm.config import load_config as ref_load_config
from geno_lewm.predictor import Predictor as RefPredictor
from geno_lewm.training import TorchTrainer, TorchTrainerBatch
from geno_lewm.training import build_adamw_optimizer as ref_build_adamw

from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError, NaNLossError
from geno_lewm_jax.interop import from_reference_state_dict, to_reference_state_dict
from geno_lewm_jax.model import PAD_ID, build_action_encoder, build_predictor, featurize_edits
from geno_lewm_jax.sharding import data_mesh
from geno_lewm_jax.training import (
    Trainer,
    TrainerBatch,
    TrainerSeeds,
    compute_skill_metrics,
    configure_reproducibility,
    make_action_mask,
    optimizer_lr,
)

STEPS = 20
B = 8
S = 64
A = 16
SIZES = dict(d_state=S, d_action=A, d_hidden=64, n_heads=2, n_cross_layers=2, n_self_layers=1, ffn_dim=64, max_actions=16)
OVERRIDES = {
    "predictor.d_state": S,
    "predictor.d_hidden": 64,
    "predictor.n_heads": 2,
    "predictor.ffn_dim": 64,
    "predictor.n_layers": 2,
    "predictor.n_self_layers": 1,
    "action.d_action": A,
    "optimizer.lr": 3e-4,
    "optimizer.warmup_steps": 5,
    "training.max_steps": STEPS,
    "phase": "phase2",
}
REF_CONFIG = {
    "phase": "phase2",
    "predictor": {"d_state": S, "n_heads": 2, "n_layers": 2},
    "action": {"d_action": A},
    "optimizer": {"lr": 3e-4, "warmup_steps": 5},
}


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter seeded non-zero (zero-initialised layers and biases included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim >= 2:
                param.copy_(noise / param.shape[1] ** 0.5)
            elif name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)
    return module


def copy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def edit_rows(rng: np.random.Generator, k: int, *, ragged: bool) -> tuple[tuple[RelEdit, ...], ...]:
    lengths = rng.integers(1, k + 1, size=B) if ragged else np.full(B, k)
    lengths[0] = k
    rows = []
    for n in lengths:
        row = []
        for _ in range(n):
            ref, alt = rng.choice(list("ACGT"), size=2, replace=False)
            row.append(RelEdit(rel_pos=int(rng.integers(0, 12_000)), edit_type=EditType.SNV, ref_bases=str(ref), alt_bases=str(alt)))
        rows.append(tuple(row))
    return tuple(rows)


def stream(k: int, seed: int = 0):
    """20 fixed batches: (rel_edits, state [B,S], targets [B,K,S] zero on padding, mask)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        rows = edit_rows(rng, k, ragged=True)
        mask = make_action_mask(rows)
        state = rng.standard_normal((B, S)).astype(np.float32)
        state /= np.linalg.norm(state, axis=-1, keepdims=True)
        targets = rng.standard_normal((B, k, S)).astype(np.float32)
        targets /= np.linalg.norm(targets, axis=-1, keepdims=True)
        targets[~mask] = 0.0
        out.append((rows, state, targets, mask))
    return out


def ours_batch(rows, state, targets, mask) -> TrainerBatch:
    return TrainerBatch(state=state, targets=targets, features=featurize_edits(rows), action_mask=mask)


def start(k: int):
    """Reference modules/trainer and our modules, identical weights."""
    ref_pred = randomize_(RefPredictor(**SIZES), seed=10 + k)
    ref_enc = randomize_(RefActionEncoder(d_action=A), seed=20 + k)
    with torch.no_grad():
        ref_enc.seq_encoder.token_embedding.weight[PAD_ID].zero_()  # torch keeps the padding row at zero
    config = load_config(overrides=OVERRIDES)
    pred = nnx.eval_shape(lambda: build_predictor(config))
    enc = nnx.eval_shape(lambda: build_action_encoder(config))
    from_reference_state_dict(pred, copy_state(ref_pred))
    from_reference_state_dict(enc, copy_state(ref_enc))
    return config, ref_pred, ref_enc, pred, enc


def run_ours(k: int, n_devices: int):
    config, _, _, pred, enc = start(k)
    trainer = Trainer(pred, enc, None, config, STEPS, mesh=data_mesh(jax.devices()[:n_devices]))
    results = [trainer.train_step(ours_batch(*batch), step) for step, batch in enumerate(stream(k), 1)]
    return trainer, results


@pytest.fixture(scope="module", params=[1, 3], ids=["K1", "K3"])
def parity(request):
    k = request.param
    config, ref_pred, ref_enc, _, _ = start(k)
    ref_config = ref_load_config(REF_CONFIG)
    ref_trainer = TorchTrainer(
        predictor=ref_pred,
        action_encoder=ref_enc,
        optimizer=ref_build_adamw(predictor=ref_pred, action_encoder=ref_enc, config=ref_config),
        config=ref_config,
        total_steps=STEPS,
    )
    ref_results = []
    for step, (rows, state, targets, mask) in enumerate(stream(k), 1):
        batch = TorchTrainerBatch(
            state=torch.from_numpy(state),
            target=torch.from_numpy(targets),
            rel_edits=rows,
            action_mask=torch.from_numpy(mask),
            window_ids=("w",) * B,
        )
        ref_results.append(ref_trainer.train_step(batch, step=step))
    trainer, results = run_ours(k, 1)
    return k, trainer, results, ref_pred, ref_enc, ref_results


def gauge_free(name: str, value: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Split packed q/k/v tensors and drop the directions without exact-arithmetic gradient."""
    if "in_proj" not in name:
        return {name: value}
    h = value.shape[0] // 3
    parts = {f"{name}.{part}": value[i * h : (i + 1) * h] for i, part in enumerate("qkv")}
    if name.endswith("in_proj_bias"):
        parts.pop(f"{name}.k")
    single_key = k == 1 and name.startswith("cross_blocks.") and int(name.split(".")[1]) % 2 == 0
    if single_key:
        parts.pop(f"{name}.q", None)
        parts.pop(f"{name}.k", None)
    return parts


@pytest.mark.slow
def test_step_scalars_match_torch_for_20_steps(parity):
    k, _, results, _, _, ref_results = parity
    for ours, ref in zip(results, ref_results):
        assert ours.step == ref.step and ours.lr_multiplier == ref.lr_multiplier
        assert ours.action_count == ref.action_count and not ours.skipped
        assert abs(ours.pred_loss - ref.pred_loss) <= 1e-5
        assert abs(ours.kl_reg - ref.kl_reg) <= 1e-5 * abs(ref.kl_reg)
        assert abs(ours.loss - ref.loss) <= 1e-5 * max(1.0, abs(ref.loss))  # phase2: dominated by 0.5 * KL
        assert ours.pred_var_per_dim == pytest.approx(ref.pred_var_per_dim, rel=1e-4, abs=1e-7)
        assert np.isfinite(ours.grad_norm) and ours.grad_norm > 0


@pytest.mark.slow
def test_params_match_torch_after_20_steps(parity):
    k, trainer, _, ref_pred, ref_enc, _ = parity
    pred, enc = trainer.modules()
    checked = 0
    for ours_module, ref_module in ((pred, ref_pred), (enc, ref_enc)):
        mine = to_reference_state_dict(ours_module)
        for name, value in ref_module.state_dict().items():
            want_parts = gauge_free(name, value.detach().numpy(), k)
            got_parts = gauge_free(name, mine[name], k)
            for part, want in want_parts.items():
                err = np.linalg.norm(got_parts[part] - want) / np.linalg.norm(want)
                assert err <= 1e-4, (part, err)
                checked += 1
    assert checked > 60
    assert np.all(to_reference_state_dict(enc)["seq_encoder.token_embedding.weight"][PAD_ID] == 0.0)


@pytest.mark.slow
def test_trained_models_predict_the_same(parity):
    k, trainer, _, ref_pred, ref_enc, _ = parity
    rows, state, _, mask = stream(3, seed=99)[0]
    targets = np.zeros((B, 3, S), np.float32)
    with torch.no_grad():
        want = ref_pred(torch.from_numpy(state), ref_enc(rows), torch.from_numpy(mask)).numpy()
    got = np.asarray(trainer.eval_step(ours_batch(rows, state, targets, mask)).predictions)[:, :3]
    np.testing.assert_allclose(got, want, atol=1e-5)


def run_default_init(n_devices: int, k: int = 3):
    config = load_config(overrides=OVERRIDES)
    trainer = Trainer(
        build_predictor(config, seed=1), build_action_encoder(config, seed=2), None, config, STEPS,
        mesh=data_mesh(jax.devices()[:n_devices]),
    )
    return trainer, [trainer.train_step(ours_batch(*batch), step) for step, batch in enumerate(stream(k), 1)]


@pytest.mark.slow
def test_eight_devices_match_one_device():
    """The same 20 ragged K=3 steps (default init) with the batch split over 8 devices vs on one.

    Only the reduction order differs. Attention key biases are left out of the
    parameter check: their gradient is zero in exact arithmetic, so they hold
    nothing but rounding noise (about 1e-6 here) that Adam rescales. Elsewhere
    the bound is test_sharding's LAYOUT_ROUNDING (seen here: 1.6e-6).
    """
    one, one_results = run_default_init(1)
    eight, eight_results = run_default_init(8)
    assert eight.mesh.devices.size == 8
    placed = eight.prepare(ours_batch(*stream(3)[0])).state
    assert len(placed.sharding.device_set) == 8 and placed.addressable_shards[0].data.shape[0] == B // 8
    for a, b in zip(eight_results, one_results):
        assert abs(a.loss - b.loss) <= 1e-6 * abs(b.loss) and abs(a.pred_loss - b.pred_loss) <= 1e-6
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(eight.params))[0]
    checked = 0
    for (path, a), b in zip(leaves, jax.tree.leaves(jax.device_get(one.params))):
        if jax.tree_util.keystr(path).endswith("['key']['bias']"):
            continue
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6, err_msg=jax.tree_util.keystr(path))
        checked += 1
    assert checked > 60


# --- one compiled step per K bucket, donation, NaN policy, eval and state --------------------------------
TINY = {
    "predictor.d_state": 16,
    "predictor.d_hidden": 16,
    "predictor.n_heads": 2,
    "predictor.ffn_dim": 16,
    "predictor.n_layers": 1,
    "predictor.n_self_layers": 0,
    "action.d_action": 8,
    "action.max_len": 8,
    "training.k_buckets": [2, 4, 8],
    "training.max_steps": 50,
    "training.collapse_log_every_steps": 5,
    "optimizer.warmup_steps": 2,
    "training.nan_policy": "skip",
}


def tiny_batch(k: int, seed: int) -> TrainerBatch:
    rng = np.random.default_rng(seed)
    rows = edit_rows(rng, k, ragged=True)
    mask = make_action_mask(rows)
    state = rng.standard_normal((B, 16)).astype(np.float32)
    targets = rng.standard_normal((B, k, 16)).astype(np.float32) * mask[..., None]
    return TrainerBatch(state=state, targets=targets, features=featurize_edits(rows), action_mask=mask)


def tiny_trainer() -> Trainer:
    """The TINY trainer on one device: these tests are about buckets and state, not layouts."""
    config = load_config(overrides=TINY)
    mesh = data_mesh(jax.devices()[:1])
    return Trainer(build_predictor(config, seed=1), build_action_encoder(config, seed=2), None, config, 50, mesh=mesh)


@pytest.fixture(scope="module")
def tiny():
    return tiny_trainer()


@pytest.mark.slow
def test_ragged_batches_compile_once_per_bucket(tiny):
    before = tiny.trace_count
    for step, k in enumerate([1, 2, 3, 4, 3, 1, 2, 4], 1):
        result = tiny.train_step(tiny_batch(k, seed=step), step)
        assert not result.skipped and result.action_count > 0
    assert tiny.trace_count - before == 2  # buckets 2 and 4: K=1 pads to 2, K=3 to 4
    assert float(optimizer_lr(tiny.opt_state)) == pytest.approx(3e-4 * 1.0, rel=1e-6)


def test_nan_policy_skip_leaves_the_state_untouched_then_raise_names_the_step(tiny):
    tiny.train_step(tiny_batch(2, seed=30), 30)
    before = jax.device_get(tiny.state)
    bad = tiny_batch(2, seed=31)
    bad = TrainerBatch(state=np.full_like(bad.state, np.nan), targets=bad.targets, features=bad.features, action_mask=bad.action_mask)
    result = tiny.train_step(bad, 31)
    assert result.skipped and not np.isfinite(result.loss)
    for a, b in zip(jax.tree.leaves(jax.device_get(tiny.state)), jax.tree.leaves(before)):
        np.testing.assert_array_equal(a, b)
    tiny.nan_policy = "raise"
    try:
        with pytest.raises(NaNLossError) as info:
            tiny.train_step(bad, 32)
    finally:
        tiny.nan_policy = "skip"
    assert info.value.details["step"] == 32
    for a, b in zip(jax.tree.leaves(jax.device_get(tiny.state)), jax.tree.leaves(before)):
        np.testing.assert_array_equal(a, b)
    assert not tiny.train_step(tiny_batch(2, seed=33), 33).skipped


def test_dispatched_steps_after_a_non_finite_one_leave_the_state_from_before_it(tiny):
    """Under nan_policy=raise, steps dispatched without a fetch halt in-graph at the first non-finite one.

    The fetch names that step, and the trainer holds exactly the state from before it,
    although two more steps were dispatched after it.
    """
    tiny.train_step(tiny_batch(2, seed=60), 20)
    before = jax.device_get(tiny.state)
    good = tiny_batch(2, seed=61)
    bad = TrainerBatch(state=np.full_like(good.state, np.nan), targets=good.targets, features=good.features, action_mask=good.action_mask)
    tiny.nan_policy = "raise"
    try:
        pending = [tiny.dispatch_step(b, s) for s, b in ((21, bad), (22, good), (23, good))]
        with pytest.raises(NaNLossError) as info:
            tiny.resolve_steps(pending)
        assert info.value.details["step"] == 21
        for a, b in zip(jax.tree.leaves(jax.device_get(tiny.state)), jax.tree.leaves(before)):
            np.testing.assert_array_equal(a, b)
        assert not tiny.train_step(good, 22).skipped  # the halt is lifted once reported
    finally:
        tiny.nan_policy = "skip"


def test_restored_state_continues_bit_for_bit(tiny):
    saved = jax.device_get(tiny.state)
    batch = tiny_batch(4, seed=40)
    first = tiny.train_step(batch, 40)
    tiny.restore_state(saved)
    again = tiny.train_step(batch, 40)
    assert first.to_dict() == again.to_dict()
    with pytest.raises(InputError):
        tiny.restore_state({"params": saved["params"]})
    with pytest.raises(InputError):
        tiny.restore_state({"params": saved["params"], "opt_state": saved["params"]})


def test_sigreg_draws_its_directions_from_seed_and_step_so_a_restored_run_continues_bit_for_bit():
    overrides = {"training.regularizer": "sigreg", "training.kl_source": "predictions", "training.sigreg_projections": 8}
    config = load_config(overrides={**TINY, **overrides})
    mesh = data_mesh(jax.devices()[:1])
    trainer = Trainer(build_predictor(config, seed=1), build_action_encoder(config, seed=2), None, config, 50, mesh=mesh)
    batches = [tiny_batch(2, seed=80 + i) for i in range(3)]
    trainer.train_step(batches[0], 1)
    saved = jax.device_get(trainer.state)
    first = [trainer.train_step(batch, step) for step, batch in enumerate(batches[1:], 2)]
    after = jax.device_get(trainer.state)
    trainer.restore_state(saved)  # as a resumed run: the same state, and nothing else carried over
    again = [trainer.train_step(batch, step) for step, batch in enumerate(batches[1:], 2)]
    assert [r.to_dict() for r in first] == [r.to_dict() for r in again]
    for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(jax.device_get(trainer.state))):
        np.testing.assert_array_equal(a, b)
    for r in first:
        assert r.loss == pytest.approx(r.pred_loss + 0.5 * r.reg, rel=1e-6) and r.reg != r.kl_reg
    trainer.restore_state(saved)
    later = trainer.train_step(batches[1], 3)  # the same state and batch at another step: other directions
    assert later.pred_loss == first[0].pred_loss and later.reg != first[0].reg


def test_eval_step_and_collapse_monitor_on_a_validation_batch(tiny):
    batch = tiny_batch(3, seed=50)
    out = tiny.eval_step(batch)
    assert out.predictions.shape == (B, 4, 16) and out.action_mask.shape == (B, 4)
    assert np.all(np.asarray(out.predictions)[~np.asarray(out.action_mask)] == 0.0)
    skill = compute_skill_metrics(out.predictions, out.targets, batch.state, out.action_mask)  # skill vs copying the source
    np.testing.assert_allclose([out.skill.delta_r2, out.skill.cos_skill], [skill.delta_r2, skill.cos_skill], rtol=1e-5, atol=1e-6)
    assert tiny.observe_collapse(batch, 7) is None
    check = tiny.observe_collapse(batch, 10)
    assert check is not None and np.isfinite(check.metrics.pred_var_per_dim)
    assert tiny.collapse_monitor.initial_pairwise_pred_dist_mean == check.metrics.pairwise_pred_dist_mean
    assert tiny.last_collapse_alerts == tuple(a.to_dict() for a in check.alerts)


def test_bad_batches_and_steps_are_input_errors(tiny):
    good = tiny_batch(2, seed=60)
    with pytest.raises(InputError) as info:
        tiny.train_step(TrainerBatch(good.state[:, :8], good.targets, good.features, good.action_mask), 1)
    assert info.value.details["field"] == "batch.state"
    with pytest.raises(InputError):
        tiny.train_step(good, 51)
    with pytest.raises(InputError):
        tiny.train_step(good, 0)
    odd = tiny_batch(2, seed=61)
    odd = TrainerBatch(odd.state[:4], odd.targets[:4], jax.tree.map(lambda a: a[:4], odd.features), odd.action_mask[:4])
    if len(tiny.mesh.devices.flat) > 4:
        with pytest.raises(InputError) as info:
            tiny.train_step(odd, 1)
        assert info.value.details["field"] == "data.batch_size"


def test_action_mask_and_seeds_follow_the_reference():
    from geno_lewm.training import TrainerSeeds as RefSeeds
    from geno_lewm.training import make_action_mask as ref_mask

    rows = edit_rows(np.random.default_rng(0), 3, ragged=True)
    np.testing.assert_array_equal(make_action_mask(rows), ref_mask(rows).numpy())
    assert make_action_mask(rows, k=5).shape == (B, 5)
    for bad in ([], ["ACGT"], [[]], [rows[0]] * 2 + [()]):
        with pytest.raises(InputError):
            make_action_mask(bad)
    with pytest.raises(InputError):
        make_action_mask(rows, k=1)
    assert TrainerSeeds.from_base_seed(41).to_dict() == RefSeeds.from_base_seed(41).to_dict()
    with pytest.raises(InputError):
        TrainerSeeds.from_base_seed(-1)


def test_configure_reproducibility_seeds_and_requests_deterministic_kernels(monkeypatch):
    import random

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    report = configure_reproducibility(seed=5, deterministic=True)
    first = (random.random(), np.random.random())
    configure_reproducibility(seed=5, deterministic=True)
    assert (random.random(), np.random.random()) == first
    assert "--xla_gpu_deterministic_ops=true" in report.xla_flags and "device_count=8" in report.xla_flags
    assert report.xla_flags_effective is False  # this test process started its backend long ago
    assert configure_reproducibility(seed=5, deterministic=False).xla_flags is None
    with pytest.raises(InputError):
        configure_reproducibility(seed=-1, deterministic=True)


def test_a_custom_optax_chain_needs_an_injected_learning_rate():
    config = load_config(overrides=TINY)
    pred, enc = build_predictor(config, seed=1), build_action_encoder(config, seed=2)
    import optax

    with pytest.raises(InputError, match="learning_rate"):
        Trainer(pred, enc, optax.adam(1e-3), config, 50)


@pytest.mark.slow
def test_a_custom_optax_chain_trains_with_the_scheduled_learning_rate():
    import optax

    config = load_config(overrides=TINY)
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    mesh = data_mesh(jax.devices()[:1])
    trainer = Trainer(build_predictor(config, seed=1), build_action_encoder(config, seed=2), sgd, config, 50, mesh=mesh)
    before = jax.device_get(trainer.params)
    result = trainer.train_step(tiny_batch(2, seed=70), 1)
    assert not result.skipped and result.grad_norm > 0
    assert float(optimizer_lr(trainer.opt_state)) == pytest.approx(3e-4 * 0.5)  # warmup step 1 of 2
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(jax.device_get(trainer.params)), jax.tree.leaves(before))]
    assert any(moved)


def test_precompiled_buckets_serve_the_steps_without_retracing():
    trainer = tiny_trainer()
    trainer.precompile(B, [2, 1], wait=True)
    assert trainer.trace_count == 2
    for step, k in enumerate([1, 2, 2, 1], 1):
        assert not trainer.train_step(tiny_batch(k, seed=step), step).skipped
    assert trainer.trace_count == 2
    trainer.precompile(B, [4])  # queued on the background thread
    trainer.close()  # drops it if it has not started, else waits for it
    assert not trainer.train_step(tiny_batch(3, seed=9), 5).skipped  # bucket 4: compiled then or on demand
    assert trainer.trace_count == 3
    with pytest.raises(InputError, match="batch_rows"):
        trainer.precompile(0)


def test_a_trainer_made_from_shapes_compiles_first_then_trains_like_one_made_from_modules():
    """The main job's start: compile from ``nnx.eval_shape`` modules while the real ones are built."""
    config = load_config(overrides=TINY)
    mesh = data_mesh(jax.devices()[:1])
    shapes = (
        nnx.eval_shape(lambda: build_predictor(config, seed=1)),
        nnx.eval_shape(lambda: build_action_encoder(config, seed=2)),
    )
    early = Trainer(*shapes, None, config, 50, mesh=mesh)
    early.precompile(B, [2])
    with pytest.raises(InputError, match="abstract modules"):
        early.train_step(tiny_batch(1, seed=1), 1)
    with pytest.raises(InputError, match="concrete modules"):
        early.initialize(*shapes)
    other = load_config(overrides={**TINY, "predictor.n_self_layers": 2})
    with pytest.raises(InputError, match="different structure"):
        early.initialize(build_predictor(other, seed=1), build_action_encoder(other, seed=2))
    early.initialize(build_predictor(config, seed=1), build_action_encoder(config, seed=2))
    direct = tiny_trainer()
    for step, k in enumerate([1, 2, 1], 1):
        assert early.train_step(tiny_batch(k, seed=step), step) == direct.train_step(tiny_batch(k, seed=step), step)
    assert early.trace_count == 1  # the precompiled bucket served every step
    for a, b in zip(jax.tree.leaves(jax.device_get(early.state)), jax.tree.leaves(jax.device_get(direct.state))):
        np.testing.assert_array_equal(a, b)
    # A resume restores into a trainer made from shapes, with no initialize first.
    resumed = Trainer(*shapes, None, config, 50, mesh=mesh)
    resumed.restore_state(jax.device_get(direct.state))
    assert resumed.train_step(tiny_batch(2, seed=4), 4) == direct.train_step(tiny_batch(2, seed=4), 4)
    assert direct.step_flops(tiny_batch(2, seed=5)) > 0
