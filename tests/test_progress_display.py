"""What the terminal shows of a run: start-up phases, the status line with skill and ETA, alerts."""

from __future__ import annotations

import io

from geno_lewm_jax.events import ProgressDisplay


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_phases_status_skill_eta_and_alert_as_plain_lines():
    now = [100.0]
    out = io.StringIO()
    display = ProgressDisplay(100, stream=out, clock=lambda: now[0])
    display.phase("loading Carbon")
    display.update(10, {"loss": 0.5})
    now[0] += 20.0  # 20 steps in 20 s: the 70 steps left take 70 s
    display.note_skill(0.25)
    display.update(30, {"loss": 0.25})
    display.alert("collapse alert at step 30: pred_var_per_dim = 1e-09 (threshold 0.5)")
    lines = out.getvalue().splitlines()
    assert lines[0] == "loading Carbon..."
    assert lines[1] == "step 10/100  loss 0.5"  # no rate yet, no skill yet
    assert lines[2] == "step 30/100  loss 0.25  val_delta_r2 0.250  eta 1:10"
    assert lines[3] == "ALERT collapse alert at step 30: pred_var_per_dim = 1e-09 (threshold 0.5)"


def test_on_a_tty_an_alert_replaces_the_live_line_and_stays():
    out = Terminal()
    display = ProgressDisplay(10, stream=out)
    display.update(1, {"loss": 1.0})
    display.alert("collapse alert at step 1: kl_reg = 300 (threshold 10)")
    display.update(2, {"loss": 1.0})
    display.finish()
    text = out.getvalue()
    first_line = text.split("\n")[0]
    # the live status line was overwritten (what a terminal shows after the last \r), the alert kept its line
    assert first_line.rsplit("\r", 1)[-1] == "ALERT collapse alert at step 1: kl_reg = 300 (threshold 10)"
    assert text.split("\n")[1].startswith("\rstep 2/10  loss 1") and text.endswith("\n")  # redrawn, then finished


def test_a_disabled_display_writes_nothing():
    out = io.StringIO()
    display = ProgressDisplay(10, stream=out, enabled=False)
    display.phase("x")
    display.alert("y")
    display.update(1, {"loss": 1.0})
    assert out.getvalue() == ""
