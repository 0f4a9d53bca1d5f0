"""The metrics path: train.log, history, TensorBoard event files and the W&B sink fed from one emit."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geno_lewm_jax import config as cfg
from geno_lewm_jax import flags as flag_defs
from geno_lewm_jax.errors import RuntimeSetupError, exit_code_for
from geno_lewm_jax.events import EventLog
from sinks_support import log_curves, tb_scalars

from geno_lewm_jax.sinks import (
    RUN_ID_NAME,
    TB_DIR,
    MetricsFanout,
    TensorBoardSink,
    curve_values,
    open_run_metrics,
    section_for,
)


def log_records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "train.log").read_text().splitlines()]


def no_sinks(**observability: Any) -> cfg.Config:
    return cfg.Config().replace({"observability.tensorboard": False, **{f"observability.{k}": v for k, v in observability.items()}})


# --- which fields are curves, and their names ------------------------------------------------------
def test_curves_are_finite_numbers_named_by_section_and_field():
    fields = {
        "step": 7, "loss": 0.5, "action_count": 3, "skipped": False, "path": "checkpoints/7",
        "tuples_per_s": None, "grad_norm": float("nan"), "lr": np.float32(1e-3),
    }
    assert curve_values("train", fields) == {"train/loss": 0.5, "train/action_count": 3.0, "train/lr": pytest.approx(1e-3)}


def test_an_event_with_no_other_number_marks_its_step():
    assert curve_values("checkpoint", {"step": 4, "path": "checkpoints/4"}) == {"checkpoint/step": 4.0}


def test_sections_are_named_and_a_new_event_needs_no_table_entry():
    assert [section_for(e) for e in ("train.progress", "train.validation", "training.collapse.metrics", "train.checkpoint")] == [
        "train", "val", "collapse", "checkpoint"]
    assert section_for("train.timeline") == "timeline"
    assert section_for("train.start") is None and section_for("training.collapse.alert") is None


# --- config and flags ----------------------------------------------------------------------------
def test_observability_flags_reach_the_config():
    c = flag_defs.config_from_argv(
        ["prog", "--notensorboard", "--wandb_project=geno", "--wandb_entity=lab", "--wandb_run_name=a", "--wandb_mode=offline"]
    )
    o = c.observability
    assert (o.tensorboard, o.wandb_project, o.wandb_entity, o.wandb_run_name, o.wandb_mode) == (False, "geno", "lab", "a", "offline")
    d = cfg.Config().observability
    assert (d.tensorboard, d.wandb_project, d.wandb_mode) == (True, None, "online")


# --- the fan-out ---------------------------------------------------------------------------------
class RecordingSink:
    def __init__(self, fail_close: bool = False) -> None:
        self.writes: list[tuple[int, dict[str, float]]] = []
        self.closed = False
        self.fail_close = fail_close

    def write(self, step: int, values: dict[str, float]) -> None:
        self.writes.append((step, values))

    def close(self) -> None:
        self.closed = True
        if self.fail_close:
            raise OSError("disk gone")


def test_one_emit_feeds_the_log_the_history_and_every_sink(tmp_path):
    a, b = RecordingSink(), RecordingSink()
    fan = MetricsFanout(EventLog(tmp_path / "train.log"), [a, b], history={"train.progress": [{"step": 1, "loss": 2.0}]})
    fan.emit("train.start", run_id="r", target_steps=4)
    fan.emit("train.progress", step=2, loss=1.5, skipped=False)
    fan.emit("train.checkpoint", step=2, path="checkpoints/2")
    fan.close()
    assert [r["event"] for r in log_records(tmp_path)] == ["train.start", "train.progress", "train.checkpoint"]
    assert fan.history("train.progress") == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "skipped": False}]
    assert fan.history("train.start") == []
    for sink in (a, b):
        assert sink.writes == [(2, {"train/loss": 1.5}), (2, {"checkpoint/step": 2.0})]
        assert sink.closed


def test_events_routed_to_one_list_at_one_step_make_one_row(tmp_path):
    rows: list[dict[str, Any]] = [{"step": 0, "val_loss": 3.0}]
    fan = MetricsFanout(EventLog(tmp_path / "train.log"), history={"training.collapse.metrics": rows, "train.validation": rows})
    fan.emit("training.collapse.metrics", step=4, kl_reg=2.0)
    fan.emit("train.validation", step=4, val_loss=1.0)
    fan.close()
    assert rows == [{"step": 0, "val_loss": 3.0}, {"step": 4, "kl_reg": 2.0, "val_loss": 1.0}]


def test_curves_of_the_phase_timeline_have_their_own_section():
    fields = {"step": 5, "loss": 1.0, "time_wall": 2.0, "producer_encode": 0.5}
    assert curve_values("train", fields) == {"train/loss": 1.0, "time/time_wall": 2.0, "time/producer_encode": 0.5}


def test_close_closes_every_sink_and_the_log_before_raising(tmp_path):
    broken, fine = RecordingSink(fail_close=True), RecordingSink()
    fan = MetricsFanout(EventLog(tmp_path / "train.log"), [broken, fine])
    with pytest.raises(OSError, match="disk gone"):
        fan.close()
    assert fine.closed and fan.log._handle is None


# --- TensorBoard ---------------------------------------------------------------------------------
def test_every_scalar_of_train_log_is_in_the_event_files_at_its_step(tmp_path):
    fan = open_run_metrics(cfg.Config(), tmp_path)
    fan.emit("train.start", run_id="r", target_steps=3)
    for step in (1, 2, 3):
        fan.emit("train.progress", step=step, loss=1.0 / step, lr=1e-3 * step, grad_norm=float("nan"), skipped=False,
                 time_wall=0.5)
    fan.emit("training.collapse.metrics", step=3, pred_var_per_dim=0.25, kl_reg=2.0)
    fan.emit("train.validation", step=0, val_loss=3.0)  # the late step-0 baseline
    fan.emit("train.checkpoint", step=3, path="checkpoints/3")
    fan.close()

    expected = log_curves(tmp_path)
    assert {"train/loss", "train/lr", "collapse/kl_reg", "val/val_loss", "checkpoint/step", "time/time_wall"} <= set(expected)
    assert "train/grad_norm" not in expected  # null in train.log, absent in TensorBoard
    assert tb_scalars(tmp_path / TB_DIR) == expected


def test_a_resumed_writer_hides_what_the_killed_run_wrote_after_the_checkpoint(tmp_path):
    logdir = tmp_path / TB_DIR
    killed = TensorBoardSink(logdir, purge_step=0)
    for step in range(1, 7):  # checkpoint at 4, killed after 6: never closed
        killed.write(step, {"train/loss": float(step)})
    resumed = TensorBoardSink(logdir, purge_step=5)  # within the same second: a second file, read after the first
    for step in range(5, 9):
        resumed.write(step, {"train/loss": 10.0 * step})
    try:
        assert len(list(logdir.iterdir())) == 2
        assert tb_scalars(logdir)["train/loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0), (7, 70.0), (8, 80.0)]
    finally:
        resumed.close()
        killed.close()


def test_open_run_metrics_purges_after_the_resume_step(tmp_path):
    first = open_run_metrics(cfg.Config(), tmp_path)
    for step in range(1, 5):
        first.emit("train.progress", step=step, loss=float(step))
    second = open_run_metrics(cfg.Config(), tmp_path, resumed_from=2)
    second.emit("train.progress", step=3, loss=-3.0)
    second.close()
    first.close()
    assert tb_scalars(tmp_path / TB_DIR)["train/loss"] == [(1, 1.0), (2, 2.0), (3, -3.0)]


def test_notensorboard_writes_no_event_files_and_other_processes_write_nothing(tmp_path):
    open_run_metrics(no_sinks(), tmp_path / "off").close()
    assert not (tmp_path / "off" / TB_DIR).exists()
    fan = open_run_metrics(cfg.Config(), tmp_path / "worker", enabled=False)
    fan.emit("train.progress", step=1, loss=1.0)
    fan.close()
    assert not (tmp_path / "worker").exists()


def test_importing_the_sinks_loads_neither_tensorboardx_nor_torch():
    code = "import sys, geno_lewm_jax.sinks; assert not {'tensorboardX', 'torch', 'wandb'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""})


# --- W&B -----------------------------------------------------------------------------------------
class FakeRun:
    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def define_metric(self, name: str, **kwargs: Any) -> None:
        self.calls.append(("define_metric", (name, kwargs)))

    def log(self, data: dict[str, Any]) -> None:
        self.calls.append(("log", data))

    def finish(self) -> None:
        self.calls.append(("finish", None))


@pytest.fixture
def fake_wandb(monkeypatch):
    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("wandb")

    def init(**kwargs: Any) -> FakeRun:
        calls.append(("init", kwargs))
        return FakeRun(calls)

    module.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def test_wandb_sink_receives_the_config_and_the_same_curves(tmp_path, fake_wandb):
    config = no_sinks(wandb_project="geno", wandb_entity="lab", wandb_mode="offline")
    fan = open_run_metrics(config, tmp_path)
    fan.emit("train.progress", step=1, loss=0.5, skipped=False)
    fan.emit("train.validation", step=0, val_loss=0.75)
    fan.close()
    (kind, init), *rest = fake_wandb
    run_id = (tmp_path / RUN_ID_NAME).read_text().strip()
    assert kind == "init" and init == {
        "project": "geno", "entity": "lab", "name": config.run_id, "mode": "offline", "id": run_id,
        "resume": "allow", "dir": str(tmp_path), "config": cfg.to_dict(config),
    }
    assert rest == [
        ("define_metric", ("step", {})),
        ("define_metric", ("*", {"step_metric": "step"})),
        ("log", {"step": 1, "train/loss": 0.5}),
        ("log", {"step": 0, "val/val_loss": 0.75}),
        ("finish", None),
    ]
    fake_wandb.clear()
    open_run_metrics(config.replace({"observability.wandb_run_name": "second"}), tmp_path, resumed_from=1).close()
    assert fake_wandb[0][1]["id"] == run_id and fake_wandb[0][1]["name"] == "second"  # a resume continues the W&B run


def test_missing_wandb_is_one_typed_line_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(RuntimeSetupError) as info:
        open_run_metrics(cfg.Config().replace({"observability.wandb_project": "geno"}), tmp_path)
    line = info.value.one_line()
    assert "\n" not in line and "observability.wandb_project" in line and "wandb" in info.value.remediation
    assert exit_code_for(info.value) == 4
    assert not (tmp_path / "train.log").exists() and not (tmp_path / TB_DIR).exists()  # nothing else written


def test_the_job_stops_on_a_missing_package_before_touching_the_run_dir(tmp_path, monkeypatch):
    from geno_lewm_jax.training.carbon import run_carbon_training

    monkeypatch.setitem(sys.modules, "wandb", None)
    config = cfg.Config().replace({"observability.wandb_project": "geno", "runtime.run_dir": str(tmp_path / "run")})
    with pytest.raises(RuntimeSetupError, match="observability.wandb_project"):
        run_carbon_training(config)
    assert not (tmp_path / "run").exists()


def test_the_job_stops_on_a_missing_tensorboardx_before_touching_the_run_dir(tmp_path, monkeypatch):
    from geno_lewm_jax.training.carbon import run_carbon_training

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    config = cfg.Config().replace({"runtime.run_dir": str(tmp_path / "run")})
    with pytest.raises(RuntimeSetupError, match="observability.tensorboard"):
        run_carbon_training(config)
    assert not (tmp_path / "run").exists()


def test_the_package_check_only_looks_tensorboardx_up():
    """Importing tensorboardX imports torch (~1 s): the check before the start must not pay for it."""
    code = (
        "import sys; from geno_lewm_jax import config as cfg; from geno_lewm_jax.sinks import require_packages; "
        "require_packages(cfg.Config()); print(sorted({'tensorboardX', 'torch'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_disabled_wandb_never_imports_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    open_run_metrics(no_sinks(wandb_project="geno", wandb_mode="disabled"), tmp_path).close()
    open_run_metrics(no_sinks(wandb_project=""), tmp_path).close()


def test_missing_tensorboardx_is_one_typed_line_naming_the_flag(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(RuntimeSetupError, match="observability.tensorboard") as info:
        open_run_metrics(cfg.Config(), tmp_path)
    assert "--notensorboard" in info.value.remediation


def test_a_failing_wandb_init_is_one_typed_line(tmp_path, fake_wandb):
    def init(**_: Any) -> None:
        raise RuntimeError("api_key not configured (no-tty)")

    sys.modules["wandb"].init = init  # type: ignore[attr-defined]
    with pytest.raises(RuntimeSetupError, match="api_key not configured") as info:
        open_run_metrics(no_sinks(wandb_project="geno"), tmp_path)
    assert "offline" in info.value.remediation


@pytest.mark.slow
def test_real_wandb_offline_run_records_the_curves(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    fan = open_run_metrics(no_sinks(wandb_project="geno", wandb_mode="offline"), tmp_path)
    for step in (1, 2):
        fan.emit("train.progress", step=step, loss=1.0 / step)
    fan.close()
    run_id = (tmp_path / RUN_ID_NAME).read_text().strip()
    assert list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
