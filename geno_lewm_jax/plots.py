"""The run's summary plot: losses, the KL diagnostic, skill, learning rate and collapse curves in one PNG.

Training curves (one point per ``train.progress`` row) are drawn as faint raw
points under a light smoothing line (a debiased exponential moving average,
as TensorBoard smooths); validation curves (one point per validation) are
drawn as they are. Skill over the no-change baseline has its own panel, with
that baseline drawn at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOT_NAME = "training_curves.png"
SMOOTHING = 0.6
"""Weight of the running average in :func:`smooth` (0 = no smoothing)."""
COLLAPSE_CURVES = ("pred_var_per_dim", "target_var_per_dim", "pairwise_pred_dist_mean", "pred_cos_mean")


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average of ``values`` (all finite)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1.0 - weight) * value
        out.append(average / (1.0 - weight**i))
    return out


def _points(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows where ``key`` is a finite number."""
    pts = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def _training_curve(ax: Any, rows: Sequence[dict[str, Any]], key: str, label: str) -> None:
    steps, values = _points(rows, key)
    if not steps:
        return
    (raw,) = ax.plot(steps, values, ".", alpha=0.3)
    ax.plot(steps, smooth(values), "-", color=raw.get_color(), label=f"{label} (smoothed)")


def _validation_curve(ax: Any, rows: Sequence[dict[str, Any]], key: str, label: str, **style: Any) -> None:
    steps, values = _points(rows, key)
    if steps:
        ax.plot(steps, values, label=label, **{"marker": "o", "linestyle": "-", **style})


def _panel(ax: Any, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _skill_panel(ax: Any, collapse: Sequence[dict[str, Any]]) -> None:
    """val_delta_r2 overall and per rollout step on the left axis, val_cos_skill (a much smaller number
    when states are close) on its own right axis; the no-change baseline is 0 on both."""
    ax.axhline(0.0, color="grey", linestyle="--", label="no-change baseline (predict the source)")
    _validation_curve(ax, collapse, "val_delta_r2", "val_delta_r2 (all steps)", color="C0", linewidth=2)
    steps = max((len(r.get("val_delta_r2_k") or ()) for r in collapse), default=0)
    for k in range(steps):
        per_step = [{"step": r["step"], "value": r["val_delta_r2_k"][k]} for r in collapse if len(r.get("val_delta_r2_k") or ()) > k]
        _validation_curve(
            ax, per_step, "value", f"val_delta_r2 at rollout step {k + 1}",
            color=f"C{k + 2}", alpha=0.6, linewidth=0.8, markersize=3,
        )
    _panel(ax, "skill over the no-change baseline (validation)", "val_delta_r2 (0 = no change, 1 = perfect)")
    cos_axis = ax.twinx()
    _validation_curve(
        cos_axis, collapse, "val_cos_skill", "val_cos_skill (right axis)", color="C1", marker="s", linestyle=":"
    )
    cos_axis.set_ylabel("val_cos_skill (mean cos gain over the baseline)")
    if cos_axis.get_lines():
        cos_axis.legend(fontsize=7, loc="lower right")
        _align_zero(ax, cos_axis, collapse)
    ax.set_zorder(cos_axis.get_zorder() + 1)  # delta R^2 on top: the two curves often coincide
    ax.patch.set_visible(False)


def _align_zero(left: Any, right: Any, collapse: Sequence[dict[str, Any]]) -> None:
    """Scale the right axis so that its 0 sits on the left axis's 0 (the baseline line serves both)."""
    r2 = max((abs(v) for v in _points(collapse, "val_delta_r2")[1]), default=0.0)
    cos = max((abs(v) for v in _points(collapse, "val_cos_skill")[1]), default=0.0)
    ratio = cos / r2 if r2 > 0 and cos > 0 else 1.0
    low, high = left.get_ylim()
    right.set_ylim(low * ratio, high * ratio)


def training_figure(progress: Sequence[dict[str, Any]], collapse: Sequence[dict[str, Any]]) -> Any:
    """The figure (a ``matplotlib.figure.Figure``, no pyplot state) of a run's progress and validation rows;
    None when matplotlib is not installed (plots are optional)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(16, 8))
    axes = fig.subplots(2, 3).ravel()
    loss, pred, kl, skill, lr, diag = axes

    _training_curve(loss, progress, "loss", "train loss")
    _validation_curve(loss, collapse, "val_loss", "validation loss")
    _panel(loss, "total loss (what the optimizer minimises)", "loss")

    _training_curve(pred, progress, "pred_loss", "train pred_loss")
    _validation_curve(pred, collapse, "val_pred_loss", "validation pred_loss")
    _panel(pred, "prediction loss", "alpha (1 - cos) + beta |pred - target|^2 / D")

    _training_curve(kl, progress, "kl_reg", "train kl_reg")
    _validation_curve(kl, collapse, "kl_reg", "validation kl_reg")
    _panel(kl, "KL regulariser", "KL to N(0, I) (nats)")

    _skill_panel(skill, collapse)

    lr.plot(*_points(progress, "lr"), "-")  # a schedule, not a measurement: drawn as it is
    _panel(lr, "learning rate", "learning rate")

    for key in COLLAPSE_CURVES:
        _validation_curve(diag, [r for r in collapse if isinstance(r.get(key), (int, float)) and r[key] > 0], key, key)
    diag.set_yscale("log")
    _panel(diag, "collapse metrics (validation)", "value (log scale)")
    fig.tight_layout()
    return fig


def write_training_plot(
    path: str | Path,
    progress: Sequence[dict[str, Any]],
    collapse: Sequence[dict[str, Any]],
) -> Path | None:
    """Write the PNG; returns None when matplotlib is not installed."""
    fig = training_figure(progress, collapse)
    if fig is None:
        return None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out


__all__ = ["PLOT_NAME", "smooth", "training_figure", "write_training_plot"]
