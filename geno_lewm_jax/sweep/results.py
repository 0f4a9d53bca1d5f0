"""A sweep's summaries: the variants side by side in ``metrics.json``, ``sweep_results.csv`` and the plot.

Everything is read back from the run's own records (``RunState.history`` and
``collapse_history``, whose rows carry each variant's values under
``name/v<i>``), so a resumed sweep summarises its whole run. Per variant:

* its swept settings;
* ``train_*``: the last logged step's loss, prediction loss, KL, prediction
  variance, gradient norm, and ``lr``;
* the last validation's figures (``val_loss``, ``val_pred_loss``, the skill
  ``val_delta_r2``/``val_cos_skill``, the collapse metrics, and any other
  per-variant figure a validation row carries), with ``best_val_loss`` over all
  validations and ``collapse_alert_count``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geno_lewm_jax.run_dir import write_text_atomic
from geno_lewm_jax.sweep.spec import split_variants, sweep_spec

SWEEP_RESULTS_NAME = "sweep_results.csv"
_TRAIN_FIGURES = ("loss", "pred_loss", "kl_reg", "pred_var_per_dim", "grad_norm")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def variant_results(config: Any, history: Sequence[dict[str, Any]], validations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant: settings, final training figures, last validation, best validation loss."""
    spec = sweep_spec(config)
    last_train = split_variants(history[-1]) if history else {}
    per_validation = [split_variants(row) for row in validations]
    last_validation = per_validation[-1] if per_validation else {}
    rows = []
    for variant in spec.variants:
        i = variant.index
        row: dict[str, Any] = {"variant": variant.name, **variant.settings}
        train = last_train.get(i, {})
        row.update({f"train_{name}": train.get(name) for name in _TRAIN_FIGURES})
        row["lr"] = train.get("lr")
        row.update({k: v for k, v in last_validation.get(i, {}).items() if k != "collapse_alerts"})
        losses = [v[i]["val_loss"] for v in per_validation if _finite(v.get(i, {}).get("val_loss"))]
        row["best_val_loss"] = min(losses) if losses else None
        row["collapse_alert_count"] = sum(int(v.get(i, {}).get("collapse_alerts") or 0) for v in per_validation)
        rows.append(row)
    return rows


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV; per-rollout-step lists (``*_k``) stay in metrics.json only."""
    columns = [k for k in dict.fromkeys(key for row in rows for key in row) if not any(isinstance(r.get(k), list) for r in rows)]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def write_sweep_results(run_dir: str | Path, config: Any, state: Any) -> dict[str, Any]:
    """Write ``sweep_results.csv`` and return the ``sweep`` section of ``metrics.json``."""
    rows = variant_results(config, state.history, state.collapse_history)
    write_text_atomic(Path(run_dir) / SWEEP_RESULTS_NAME, _csv_text(rows))
    spec = sweep_spec(config)
    return {"fields": list(spec.fields), "results_csv": SWEEP_RESULTS_NAME, "variants": rows}


def write_sweep_plot(
    path: str | Path, progress: Sequence[dict[str, Any]], collapse: Sequence[dict[str, Any]]
) -> Path | None:
    """The run's curves with one line per variant: prediction loss, learning rate, skill, collapse.

    Returns None when matplotlib is not installed (plots are optional).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [(row["step"], split_variants(row)) for row in progress]
    val = [(row["step"], split_variants(row)) for row in collapse]
    variants = sorted({i for _, by in train + val for i in by})
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for i in variants:
        color = f"C{i % 10}"

        def series(rows: list[tuple[int, dict[int, dict[str, Any]]]], key: str) -> tuple[list[int], list[Any]]:
            pts = [(step, by[i][key]) for step, by in rows if _finite(by.get(i, {}).get(key))]
            return [s for s, _ in pts], [v for _, v in pts]

        axes[0].plot(*series(train, "pred_loss"), color=color, label=f"v{i} train")
        axes[0].plot(*series(val, "val_pred_loss"), "o--", color=color, label=f"v{i} validation")
        axes[1].plot(*series(train, "lr"), color=color, label=f"v{i}")
        axes[2].plot(*series(val, "val_delta_r2"), "o-", color=color, label=f"v{i}")
        axes[3].plot(*series(val, "pred_var_per_dim"), "o-", color=color, label=f"v{i}")
    titles = ("prediction loss", "learning rate", "validation delta_r2 (skill)", "validation pred_var_per_dim (log)")
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("step")
        if variants:
            ax.legend(fontsize=7)
    axes[3].set_yscale("log")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


__all__ = ["SWEEP_RESULTS_NAME", "variant_results", "write_sweep_plot", "write_sweep_results"]
