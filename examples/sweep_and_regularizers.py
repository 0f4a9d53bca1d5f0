"""Two ablations on the embedded default, each ending in a results table.

1. A 4-variant seed sweep: the four models train together in one vmapped step
   (``--sweep=seed:0,1,2,3``), reading one batch stream; the table is the run's
   ``metrics.json`` sweep section (also in ``sweep_results.csv``).
2. A regulariser comparison: one run per ``--regularizer`` (lejepa_kl, the
   reference's, against sigreg and none) on the predictions, in phase2
   (``REGULARIZER_FLAGS``). The embedded default trains phase1, where every
   regulariser is only logged; and the reference computes it on the targets,
   which come from the frozen Carbon and carry no gradient. Either way the three
   runs would train the same model. A regulariser changes the program, not
   just a number in it, so these are separate runs rather than a sweep.

    python examples/sweep_and_regularizers.py [--run_root runs/examples] [any main-job flag ...]

Extra flags go to every run (e.g. ``--max_steps=50``). The embedded default
(``configs/tiny.flags``) creates the stand-in Carbon and a synthetic snapshot
under ~/.cache/geno_lewm_jax when they are missing. Copy this file and change
``SWEEP`` or ``REGULARIZERS`` to run your own comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SWEEP = "seed:0,1,2,3"
REGULARIZERS = ("lejepa_kl", "sigreg", "none")
# gamma * R is in the loss only in phase2, and R reaches the predictor only when computed on its
# predictions (your flags come after these and may override them).
REGULARIZER_FLAGS = ("--phase=phase2", "--kl_source=predictions")
# The columns of both tables: final training loss, then the last validation's losses, skill over
# the no-change baseline (delta_r2 > 0 beats predicting "nothing changed") and collapse diagnostics.
COLUMNS = (
    "train_loss", "val_loss", "val_pred_loss", "best_val_loss", "val_delta_r2", "val_cos_skill",
    "pred_var_per_dim", "pairwise_pred_dist_mean", "pred_target_corr",
)


def train(flags: list[str]) -> dict[str, Any]:
    """Run the main job with ``flags`` on top of the embedded default; return its metrics.json."""
    from geno_lewm_jax.flags import config_from_argv
    from geno_lewm_jax.job import run_job

    config = config_from_argv(["example", f"--flagfile={REPO / 'configs' / 'tiny.flags'}", *flags])
    run_job(config)
    return json.loads((Path(config.runtime.run_dir).expanduser() / "metrics.json").read_text())


def run_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """A single run's row: final losses and its last validation's figures."""
    last = metrics["collapse_history"][-1] if metrics["collapse_history"] else {}
    return {"train_loss": metrics["train_loss"], "best_val_loss": metrics["best_val_loss"], **last}


def print_table(title: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    columns = [*keys, *COLUMNS]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) else "nan"
    return "-" if value is None else str(value)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_root", default="runs/examples", help="Where the runs' directories go.")
    args, flags = parser.parse_known_args(argv)
    root = Path(args.run_root)

    sweep = train([*flags, f"--sweep={SWEEP}", f"--run_dir={root / 'seed_sweep'}"])["sweep"]
    print_table(f"seed sweep ({SWEEP}; one vmapped step, one data stream)", sweep["variants"], ("variant", *sweep["fields"]))

    rows = []
    for name in REGULARIZERS:
        metrics = train([*REGULARIZER_FLAGS, *flags, f"--regularizer={name}", f"--run_dir={root / f'regularizer_{name}'}"])
        rows.append({"regularizer": name, **run_summary(metrics)})
    print_table("regularizer comparison", rows, ("regularizer",))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
