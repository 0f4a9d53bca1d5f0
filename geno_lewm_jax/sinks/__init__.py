"""Where a run's numbers go: ``train.log``, the in-memory history, TensorBoard and W&B, from one call.

:func:`open_run_metrics` builds the :class:`MetricsFanout` a run emits every
event through, with the sinks its ``observability`` settings ask for. Only the
process that writes the run directory (process 0) opens real sinks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geno_lewm_jax import config as cfg
from geno_lewm_jax.events import LOG_NAME, EventLog
from geno_lewm_jax.sinks.fanout import MetricsFanout, ScalarSink
from geno_lewm_jax.sinks.scalars import curve_values, is_scalar, section_for, tag_for
from geno_lewm_jax.sinks.tensorboard_sink import TB_DIR, TensorBoardSink, import_tensorboardx
from geno_lewm_jax.sinks.wandb_sink import RUN_ID_NAME, WandbSink, import_wandb


def wandb_enabled(config: cfg.Config) -> bool:
    obs = config.observability
    return bool(obs.wandb_project) and obs.wandb_mode != "disabled"


def require_packages(config: cfg.Config) -> None:
    """Raise the missing-package error now, before a long setup, for each sink the config asks for.

    The packages are only looked up here: importing tensorboardX imports torch (~1 s of
    the interpreter's time that would hold up the step's compile); the sinks import them
    when they open, by which time Carbon has imported torch.
    """
    if config.observability.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        import_tensorboardx()  # the typed error
    if wandb_enabled(config) and importlib.util.find_spec("wandb") is None:
        import_wandb(config.observability.wandb_project)  # type: ignore[arg-type] - wandb_enabled checked it


def open_run_metrics(
    config: cfg.Config,
    run_dir: str | Path,
    *,
    resumed_from: int = 0,
    enabled: bool = True,
    history: Mapping[str, list[dict[str, Any]]] | None = None,
) -> MetricsFanout:
    """The run's metrics path; ``resumed_from`` is the checkpoint step the run restarts from (0 = fresh).

    ``history`` routes events to the lists their rows are appended to (see :class:`MetricsFanout`).

    TensorBoard hides what an earlier process of this run dir wrote after that
    step (at or after step 0 on a fresh start, where nothing was kept).
    """
    run_dir = Path(run_dir)
    sinks: list[ScalarSink] = []
    try:  # W&B first: it is the likeliest to fail, and then nothing else has been written
        if enabled and wandb_enabled(config):
            obs = config.observability
            sinks.append(
                WandbSink(
                    project=obs.wandb_project,  # type: ignore[arg-type] - wandb_enabled checked it is set
                    entity=obs.wandb_entity or None,
                    name=obs.wandb_run_name or config.run_id,
                    mode=obs.wandb_mode,
                    run_dir=run_dir,
                    config=cfg.to_dict(config),
                )
            )
        if enabled and config.observability.tensorboard:
            sinks.append(TensorBoardSink(run_dir / TB_DIR, purge_step=resumed_from + 1 if resumed_from else 0))
        log = EventLog(run_dir / LOG_NAME, enabled=enabled)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return MetricsFanout(log, sinks, history=history)


__all__ = [
    "RUN_ID_NAME",
    "TB_DIR",
    "MetricsFanout",
    "ScalarSink",
    "TensorBoardSink",
    "WandbSink",
    "curve_values",
    "is_scalar",
    "open_run_metrics",
    "require_packages",
    "section_for",
    "tag_for",
    "wandb_enabled",
]
