"""The run's summary plot: loss, learning rate and collapse curves in one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOT_NAME = "training_curves.png"


def write_training_plot(
    path: str | Path,
    progress: Sequence[dict[str, Any]],
    collapse: Sequence[dict[str, Any]],
) -> Path | None:
    """Write the PNG; returns None when matplotlib is not installed (plots are optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in progress]
    # The total loss in phase2 carries gamma * KL of the targets, a large constant; plot the
    # prediction loss, which is what training moves.
    axes[0].plot(steps, [r.get("pred_loss") for r in progress], label="train pred_loss")
    val = [r for r in collapse if r.get("val_pred_loss") is not None]
    if val:
        axes[0].plot([r["step"] for r in val], [r["val_pred_loss"] for r in val], "o-", label="validation pred_loss")
    axes[0].set_title("prediction loss")
    axes[0].set_xlabel("step")
    axes[0].legend()
    axes[1].plot(steps, [r.get("lr") for r in progress])
    axes[1].set_title("learning rate")
    axes[1].set_xlabel("step")
    for key in ("pred_var_per_dim", "target_var_per_dim", "pairwise_pred_dist_mean", "pred_cos_mean"):
        pts = [(r["step"], r[key]) for r in collapse if r.get(key) is not None]
        if pts:
            axes[2].plot([s for s, _ in pts], [v for _, v in pts], "o-", label=key)
    axes[2].set_title("collapse metrics (validation)")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step")
    if collapse:
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
