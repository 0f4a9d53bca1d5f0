"""The run's plot: every panel labelled, the total loss and kl_reg drawn, skill against its no-change baseline."""

from __future__ import annotations

import pytest

from geno_lewm_jax.plots import smooth, training_figure, write_training_plot

pytest.importorskip("matplotlib")

PROGRESS = [{"step": s, "loss": 1.0 / s, "pred_loss": 0.5 / s, "kl_reg": 300.0, "lr": 1e-4} for s in (1, 20, 40, 60)]
COLLAPSE = [
    {"step": s, "val_loss": 0.9, "val_pred_loss": 0.4, "kl_reg": 290.0, "val_delta_r2": r2, "val_cos_skill": r2 / 10,
     "pred_var_per_dim": 0.01, "target_var_per_dim": 0.01, "pairwise_pred_dist_mean": 0.7, "pred_cos_mean": 0.9}
    for s, r2 in ((0, 0.0), (30, 0.1), (60, 0.3))
]


def _panels(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}  # a twin axis has no title of its own


def test_every_panel_has_a_y_label_and_the_losses_and_kl_are_drawn():
    fig = training_figure(PROGRESS, COLLAPSE)
    panels = _panels(fig)
    assert len(panels) == 6 and all(ax.get_xlabel() == "step" for ax in panels.values())
    assert all(ax.get_ylabel() for ax in fig.axes)  # twin axes included
    loss = panels["total loss (what the optimizer minimises)"]
    assert {"train loss (smoothed)", "validation loss"} <= {line.get_label() for line in loss.get_lines()}
    kl = panels["KL regulariser"]
    assert {"train kl_reg (smoothed)", "validation kl_reg"} <= {line.get_label() for line in kl.get_lines()}


def test_skill_has_its_own_panel_with_the_baseline_at_zero():
    fig = training_figure(PROGRESS, COLLAPSE)
    skill = _panels(fig)["skill over the no-change baseline (validation)"]
    lines = {line.get_label(): line for line in skill.get_lines()}
    baseline = lines["no-change baseline (predict the source)"]
    assert set(baseline.get_ydata()) == {0.0}
    assert list(lines["val_delta_r2 (all steps)"].get_ydata()) == [0.0, 0.1, 0.3]
    cos_axis = next(ax for ax in fig_axes_sharing(skill) if ax is not skill)
    assert list(cos_axis.get_lines()[0].get_ydata()) == [0.0, 0.01, 0.03]


def fig_axes_sharing(ax):
    return [other for other in ax.figure.axes if other.get_shared_x_axes().joined(ax, other)]


def test_per_rollout_step_skill_is_drawn_when_validations_have_it():
    rows = [{**row, "val_delta_r2_k": [0.2, None, 0.1]} for row in COLLAPSE]
    skill = _panels(training_figure(PROGRESS, rows))["skill over the no-change baseline (validation)"]
    labels = {line.get_label() for line in skill.get_lines()}
    assert {"val_delta_r2 at rollout step 1", "val_delta_r2 at rollout step 3"} <= labels


def test_training_curves_are_raw_points_under_a_smoothing_line():
    loss = _panels(training_figure(PROGRESS, COLLAPSE))["total loss (what the optimizer minimises)"]
    raw, smoothed = loss.get_lines()[:2]
    assert raw.get_linestyle() == "None" and raw.get_alpha() < 1
    assert list(smoothed.get_ydata()) == pytest.approx(smooth([r["loss"] for r in PROGRESS]))
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # debiased: a constant stays itself


def test_the_png_is_written(tmp_path):
    assert write_training_plot(tmp_path / "plot.png", PROGRESS, COLLAPSE).stat().st_size > 0
