"""The shapes ``bench/gpu.py`` runs at: the Carbon-500M release recipe on a GPU, or a tiny CPU smoke.

Both sides of every comparison are built from one :class:`Sizes`, so a smoke
run exercises exactly the code paths of the real one at shapes a 2-core CPU
finishes in a few minutes.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Model shapes and devices of one bench mode."""

    standin: str  # bridge.write_standin size
    device: str  # torch device of Carbon and of the reference trainer
    job_flags: tuple[str, ...]  # on top of configs/carbon.flags, for our main job
    encoder: dict[str, Any]  # the reference's encoder section (and our CarbonEncoder's dtype/layer)
    reference_predictor: dict[str, Any]  # the reference's predictor section
    step_overrides: dict[str, Any]  # our load_config overrides for the train-step section
    matmul_n: int  # side of the square bf16 matmul that measures the chip's rate


RELEASE = Sizes(
    standin="500m",
    device="cuda",
    job_flags=(),  # carbon.flags: d_state 1024, state_layer 20, bf16 Carbon, --device=cuda
    encoder={"dtype": "bf16", "state_layer": 20, "pool_radius": 8},
    reference_predictor={"d_state": 1024, "n_layers": 6, "n_heads": 8},
    step_overrides={},  # load_config's defaults are the release predictor
    matmul_n=8192,
)

SMOKE = Sizes(
    standin="tiny",
    device="cpu",
    job_flags=(
        "--model_id=standin/carbon-tiny", "--encoder_dtype=fp32", "--state_layer=2", "--d_state=64",
        "--n_layers=2", "--n_self_layers=1", "--d_hidden=64", "--ffn_dim=64", "--device=cpu",
    ),
    encoder={"dtype": "fp32", "state_layer": 2, "pool_radius": 8},
    reference_predictor={"d_state": 64, "n_layers": 1, "n_heads": 8},
    step_overrides={
        "predictor.d_state": 64, "predictor.n_layers": 1, "predictor.n_self_layers": 1,
        "predictor.d_hidden": 64, "predictor.ffn_dim": 64,
    },
    matmul_n=256,
)


def sizes_for(smoke: bool) -> Sizes:
    return SMOKE if smoke else RELEASE
