"""The frozen config: defaults, YAML compatibility with geno-lewm 0.2.1, flags and validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from geno_lewm_jax import config as cfg
from geno_lewm_jax import flags as flag_defs
from geno_lewm_jax.errors import InvalidConfigError, MissingConfigError, UnknownTopLevelKeyError, exit_code_for

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_release_recipe():
    c = cfg.Config()
    assert (c.predictor.d_state, c.encoder.state_layer, c.encoder.pool_radius) == (1024, 20, 8)
    assert (c.predictor.n_layers, c.predictor.n_heads, c.action.d_action, c.action.max_len) == (6, 8, 64, 16)
    o = c.optimizer
    assert (o.name, o.lr, o.beta1, o.beta2, o.weight_decay, o.grad_clip, o.warmup_steps, o.schedule) == (
        "adamw", 3e-4, 0.9, 0.95, 0.1, 1.0, 1000, "wsd")
    assert c.encoder.state_contract == "l2_normalized_v2" and c.data.stream == "kstep"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.Config().seed = 3  # type: ignore[misc]


def test_carbon_flags_equal_defaults_and_tiny_only_overrides():
    carbon = cfg.load_config(REPO / "configs/carbon.flags")
    assert cfg.diff(carbon, cfg.Config()) == {}
    tiny = cfg.load_config(REPO / "configs/tiny.flags")
    changed = set(cfg.diff(tiny, carbon))
    assert "predictor.d_state" in changed and "runtime.device" in changed
    assert "predictor.n_layers" not in changed and "optimizer.lr" not in changed


def test_yaml_round_trip(tmp_path):
    c = cfg.load_config(overrides={"predictor.d_state": 64, "training.k_buckets": [1, 4, 16], "seed": 5})
    path = cfg.write_yaml(c, tmp_path / "effective.yaml")
    assert cfg.load_config(path) == c


def test_reference_default_yamls_load():
    ref = pytest.importorskip("geno_lewm.config.loader")
    defaults = Path(ref.__file__).parent / "defaults"
    c = cfg.load_config(defaults / "train.yaml", overrides={"optimizer.warmup_steps": 10})
    assert c.predictor.d_state == 512 and c.run_id == "phase1-default"
    assert c.action.sub_encoders == ("snv", "ins", "del", "mnv")


def test_reference_written_yaml_loads(tmp_path):
    """A YAML written by the reference's resolved-config writer loads here unchanged."""
    loader = pytest.importorskip("geno_lewm.config.loader")
    ref_cfg = loader.load_config({"predictor": {"d_state": 1024}, "training": {"max_steps": 4000}})
    path = tmp_path / "training_config.effective.yaml"
    loader.write_resolved_config(ref_cfg, path)
    ours = cfg.load_config(path)
    assert ours.predictor.d_state == 1024 and ours.training.max_steps == 4000


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"deterministic": 1}, "deterministic"),
        ({"optimizer": {"lr": "fast"}}, "optimizer.lr"),
        ({"predictor": {"n_heads": 2.0}}, "predictor.n_heads"),
        ({"phase": "phase3"}, "phase"),
        ({"bogus": 1}, "bogus"),
        ({"predictor": {"bogus": 1}}, "predictor.bogus"),
        ({"predictor": 5}, "predictor"),
        ({"predictor": {"d_hidden": 100, "n_heads": 8}}, "predictor.d_hidden"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"optimizer": {"lr": -1.0}}, "optimizer.lr"),
        ({"optimizer": {"beta2": 1.5}}, "optimizer.beta2"),
        ({"training": {"k_buckets": [4, 2]}}, "training.k_buckets"),
    ],
)
def test_invalid_values_name_their_field(payload, field):
    with pytest.raises(InvalidConfigError) as info:
        cfg.from_dict(payload)
    assert field in str(info.value)
    assert exit_code_for(info.value) == 2


def test_reference_default_config_imports_with_a_warning_that_says_what_the_schedule_does(tmp_path):
    """geno-lewm 0.2.1's own defaults (warmup 1000 > 50 steps under wsd) load from a dict, a YAML or --config_yaml."""
    from geno_lewm.config import config_to_dict, load_default, write_resolved_config

    reference = load_default("train")
    yaml_path = write_resolved_config(reference, tmp_path / "reference.yaml")
    says = r"rises linearly for all 50 steps to 0\.05 x optimizer\.lr .*no stable or decay phase"
    for load in (
        lambda: cfg.from_dict(config_to_dict(reference)),
        lambda: cfg.load_config(yaml_path),
        lambda: flag_defs.config_from_argv(["prog", f"--config_yaml={yaml_path}"]),
        lambda: flag_defs.config_from_argv(["prog", f"--config_yaml={yaml_path}", "--seed=3"]),
    ):
        with pytest.warns(cfg.ConfigWarning, match=says):
            c = load()
        assert (c.training.max_steps, c.optimizer.warmup_steps, c.predictor.d_state) == (50, 1000, 512)


@pytest.mark.parametrize(
    "load",
    [
        lambda yaml_path: flag_defs.config_from_argv(["prog", "--max_steps=50", "--warmup_steps=1000"]),
        lambda yaml_path: flag_defs.config_from_argv(["prog", f"--config_yaml={yaml_path}", "--max_steps=50"]),
        lambda yaml_path: cfg.load_config(overrides={"training.max_steps": 10}),
        lambda yaml_path: cfg.Config().replace({"optimizer.warmup_steps": 40000}),
    ],
    ids=["flags", "yaml-then-flag", "overrides", "replace"],
)
def test_the_same_values_given_as_flags_or_overrides_stay_an_error(tmp_path, load):
    yaml_path = tmp_path / "reference.yaml"
    yaml_path.write_text(yaml.safe_dump({"training": {"max_steps": 50}, "optimizer": {"warmup_steps": 1000}}))
    with pytest.raises(InvalidConfigError, match="optimizer.warmup_steps") as info:
        load(yaml_path)
    assert exit_code_for(info.value) == 2


def test_a_runnable_config_imports_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", cfg.ConfigWarning)
        cfg.from_dict({"training": {"max_steps": 1001}})
        cfg.from_dict({"training": {"max_steps": 10}, "optimizer": {"schedule": "cosine"}})


def test_unknown_top_level_key_type():
    with pytest.raises(UnknownTopLevelKeyError):
        cfg.from_dict({"nope": 1})


def test_int_widens_to_float_and_lists_become_tuples():
    c = cfg.from_dict({"optimizer": {"lr": 1}, "action": {"sub_encoders": ["snv"]}})
    assert c.optimizer.lr == 1.0 and isinstance(c.optimizer.lr, float)
    assert c.action.sub_encoders == ("snv",)


def test_missing_yaml_and_bad_yaml(tmp_path):
    with pytest.raises(MissingConfigError):
        cfg.load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InvalidConfigError):
        cfg.load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InvalidConfigError, match="warmup"):  # empty = defaults, so the override trips wsd
        cfg.load_config(empty, overrides={"training.max_steps": 5})


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"seed": 7, "predictor": {"d_state": 256}, "optimizer": {"lr": 1e-3}}))
    c = flag_defs.config_from_argv(["prog", f"--config_yaml={path}", "--lr=5e-4"])
    assert (c.seed, c.predictor.d_state, c.optimizer.lr) == (7, 256, 5e-4)
    assert c.data.batch_size == cfg.Config().data.batch_size


def test_every_field_has_a_unique_flag():
    names = [flag_defs.flag_name(s.dotted) for s in cfg.iter_fields()]
    assert len(names) == len(set(names))
    assert all(s.help for s in cfg.iter_fields())


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--d_state=abc"], "d_state"),
        (["--lrr=1"], "lrr"),
        (["--phase=phase3"], "phase"),
        (["--k_buckets=1,x"], "k_buckets"),
        (["--n_heads=7"], "predictor.d_hidden"),
        (["--batch_size=-3"], "data.batch_size"),
    ],
)
def test_invalid_flags(argv, needle):
    with pytest.raises(InvalidConfigError) as info:
        flag_defs.config_from_argv(["prog", *argv])
    assert needle in str(info.value)


def test_fingerprint_and_describe():
    a = cfg.Config()
    b = a.replace({"optimizer.lr": 1e-3})
    assert cfg.fingerprint(a) != cfg.fingerprint(b)
    assert cfg.fingerprint(a, exclude=("optimizer.lr",)) == cfg.fingerprint(b, exclude=("optimizer.lr",))
    assert cfg.describe_field("predictor.d_state")["default"] == 1024
    with pytest.raises(MissingConfigError):
        cfg.describe_field("predictor.nope")
