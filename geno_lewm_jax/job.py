"""The main job: what ``main`` does with a validated config."""

from __future__ import annotations

import yaml

from geno_lewm_jax import config as cfg


def describe(config: cfg.Config) -> str:
    """The resolved config as YAML plus trainable parameter counts."""
    from geno_lewm_jax.model import build_action_encoder, build_predictor, count_params

    text = yaml.safe_dump(cfg.to_dict(config), sort_keys=True, default_flow_style=False)
    p = count_params(build_predictor(config))
    a = count_params(build_action_encoder(config))
    return (
        f"{text}\ntrainable parameters: predictor {p:,}, action_encoder {a:,}, total {p + a:,}"
    )


def run_job(config: cfg.Config) -> int:
    print(describe(config))
    return 0
