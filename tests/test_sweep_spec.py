"""``--sweep``: parsing into variants, and every bad sweep as an InvalidConfigError naming ``--sweep``."""

from __future__ import annotations

import pytest

from geno_lewm_jax.config import load_config
from geno_lewm_jax.errors import InputError, InvalidConfigError
from geno_lewm_jax.flags import config_from_argv
from geno_lewm_jax.sweep.spec import check_variant, per_variant, split_variants, sweep_spec, variant_key


def test_a_product_of_two_lists_makes_one_variant_per_pair_first_list_slowest():
    config = config_from_argv(["prog", "--sweep=seed:0,1;lr:1e-4,3e-4,1e-3", "--seed=7"])
    spec = sweep_spec(config)
    assert spec.fields == ("seed", "optimizer.lr")
    assert [v.settings for v in spec.variants][:4] == [
        {"seed": 0, "optimizer.lr": 1e-4},
        {"seed": 0, "optimizer.lr": 3e-4},
        {"seed": 0, "optimizer.lr": 1e-3},
        {"seed": 1, "optimizer.lr": 1e-4},
    ]
    twin = spec.variants[4].config
    assert (twin.seed, twin.optimizer.lr, twin.sweep) == (1, 3e-4, "")
    assert spec.values("optimizer.weight_decay") == [config.optimizer.weight_decay] * 6
    assert spec.swept("schedule") == {"lr": "optimizer.lr"} and spec.swept("init") == {"seed": "seed"}
    assert spec.to_meta()["variants"][5] == {"variant": "v5", "seed": 1, "optimizer.lr": 1e-3}
    assert spec.variants[5].label == "seed=1, optimizer.lr=0.001"


@pytest.mark.parametrize(
    ("sweep", "words"),
    [
        ("seed=0,1", "field:v1,v2"),
        ("nope:1,2", "unknown setting 'nope'"),
        ("d_hidden:64,128", "predictor.d_hidden cannot be swept"),
        ("data.batch_size:8,16", "data.batch_size cannot be swept"),
        ("nan_policy:skip", "training.nan_policy cannot be swept"),
        ("seed:0,x", "seed takes an integer, got 'x'"),
        ("seed:0.5", "seed takes an integer"),
        ("lr:abc", "optimizer.lr takes a number"),
        ("lr:", "needs a comma-separated list"),
        ("lr:1e-3,,2e-3", "needs a comma-separated list"),
        ("lr:1e-3,1e-3", "lists a value twice"),
        ("seed:0,1;seed:2", "seed is listed twice"),
        ("lr:1e-3,-1", "variant 1"),
        ("weight_decay:nan", "optimizer.weight_decay"),
        ("warmup_steps:10,2500", "variant 1"),
    ],
)
def test_bad_sweeps_are_invalid_config_errors_naming_the_flag(sweep, words):
    with pytest.raises(InvalidConfigError) as info:
        load_config(overrides={"training.max_steps": 2000, "sweep": sweep})
    assert info.value.message.startswith("--sweep: ") and words in info.value.message
    assert info.value.details["field"] == "sweep"


def test_variant_keys_and_rows_and_the_variant_check():
    row = {"step": 3, "loss": 1.0, variant_key("loss", 0): 0.5, variant_key("loss", 1): 1.5, "a/b": 2, "x/v": 1}
    assert per_variant(row) == {"loss/v0": 0.5, "loss/v1": 1.5}
    assert split_variants(row) == {0: {"loss": 0.5}, 1: {"loss": 1.5}}
    config = load_config(overrides={"sweep": "seed:0,1"})
    assert check_variant(config, 1) == 1
    for bad in (None, 2, -1):
        with pytest.raises(InputError) as info:
            check_variant(config, bad)
        assert "0: seed=0; 1: seed=1" in info.value.message and info.value.details["field"] == "variant"


def test_a_sweep_refuses_the_ordered_gradient_reduction():
    with pytest.raises(InvalidConfigError) as info:
        load_config(overrides={"sweep": "seed:0,1", "runtime.grad_reduction": "ordered"})
    assert "all_reduce" in info.value.message and info.value.details["field"] == "sweep"
