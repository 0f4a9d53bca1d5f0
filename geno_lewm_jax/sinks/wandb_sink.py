"""An optional Weights & Biases sink: the same curves as TensorBoard, plus the config.

``wandb`` is an optional extra, imported only when ``observability.wandb_project``
is set and ``observability.wandb_mode`` is not ``disabled``. The W&B run id is
made once per run directory and kept in ``wandb_run_id.txt`` there, so a resumed
run continues the same W&B run. Points are plotted against the training
``step`` (a custom x axis) rather than W&B's call counter, so the step-0
validation, recorded after the first steps, still lands at step 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geno_lewm_jax.errors import RuntimeSetupError
from geno_lewm_jax.run_dir import write_text_atomic

RUN_ID_NAME = "wandb_run_id.txt"
STEP_KEY = "step"


def run_id_for(run_dir: Path) -> str:
    """The W&B run id of ``run_dir``: read back if the run dir has one, else made and written."""
    path = run_dir / RUN_ID_NAME
    if path.is_file():
        saved = path.read_text(encoding="utf-8").strip()
        if saved:
            return saved
    new_id = uuid.uuid4().hex[:16]
    write_text_atomic(path, new_id + "\n")
    return new_id


def import_wandb(project: str) -> Any:
    """The ``wandb`` module, or one typed error line naming the setting that asked for it."""
    try:
        import wandb
    except ImportError:
        raise RuntimeSetupError(
            f"observability.wandb_project={project!r} needs the wandb package, which is not installed",
            details={"field": "observability.wandb_project", "package": "wandb"},
            remediation="pip install 'geno-lewm-jax[wandb]' (or wandb), or drop --wandb_project.",
        ) from None
    return wandb


class WandbSink:
    """Streams curves to one W&B run (``mode="offline"`` writes under ``<run_dir>/wandb/`` with no network)."""

    def __init__(
        self,
        *,
        project: str,
        entity: str | None,
        name: str,
        mode: str,
        run_dir: Path,
        config: Mapping[str, Any],
    ) -> None:
        wandb = import_wandb(project)
        try:
            self._run = wandb.init(
                project=project,
                entity=entity,
                name=name,
                mode=mode,
                id=run_id_for(run_dir),
                resume="allow",
                dir=str(run_dir),
                config=dict(config),
            )
        except Exception as exc:  # wandb's own errors (no login, no network) become one line
            raise RuntimeSetupError(
                f"wandb.init failed for observability.wandb_project={project!r}: {exc}",
                details={"field": "observability.wandb_project", "error": type(exc).__name__},
                remediation="Run `wandb login`, or pass --wandb_mode=offline and `wandb sync` later.",
            ) from None
        self._run.define_metric(STEP_KEY)
        self._run.define_metric("*", step_metric=STEP_KEY)

    def write(self, step: int, values: dict[str, float]) -> None:
        self._run.log({STEP_KEY: step, **values})

    def close(self) -> None:
        self._run.finish()


__all__ = ["RUN_ID_NAME", "STEP_KEY", "WandbSink", "import_wandb", "run_id_for"]
