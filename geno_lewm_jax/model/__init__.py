"""The trainable GenoLeWM modules in Flax NNX: predictor, action encoder, rollout.

Layout, init and numerics follow geno-lewm 0.2.1 (``geno_lewm_jax.interop``
converts weights both ways); see each module's docstring for where and why
this package goes further (causal mode, bf16 compute, a jitted rollout).
"""

from geno_lewm_jax.model.action_encoder import (
    PADDING_ROW_PATH,
    ActionEncoder,
    build_action_encoder,
    padding_row_mask,
)
from geno_lewm_jax.model.featurize import PAD_ID, EditFeatures, featurize_edits
from geno_lewm_jax.model.params import abstract_module, count_params
from geno_lewm_jax.model.predictor import Predictor, build_predictor
from geno_lewm_jax.model.rollout import rollout

__all__ = [
    "PAD_ID",
    "PADDING_ROW_PATH",
    "ActionEncoder",
    "EditFeatures",
    "Predictor",
    "abstract_module",
    "build_action_encoder",
    "build_predictor",
    "count_params",
    "featurize_edits",
    "padding_row_mask",
    "rollout",
]
