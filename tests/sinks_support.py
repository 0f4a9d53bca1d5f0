"""Reading a run's curves back: from TensorBoard event files, and from train.log by the sinks' rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geno_lewm_jax.sinks import curve_values, section_for

Curves = dict[str, list[tuple[int, float]]]


def tb_scalars(logdir: Path, *, purge: bool = True) -> Curves:
    """Every scalar tag of ``logdir`` as (step, value) in file order; ``purge`` applies the restart
    records as TensorBoard's Python reader does (False: every point ever written)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0}, purge_orphaned_data=purge)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def preempted(curves: Curves) -> Curves:
    """What TensorBoard's fast reader shows: per curve, a point at step s drops the earlier points at >= s."""
    out: Curves = {}
    for tag, points in curves.items():
        kept: list[tuple[int, float]] = []
        for step, value in points:
            kept = [p for p in kept if p[0] < step] + [(step, value)]
        out[tag] = kept
    return out


def log_curves(run_dir: Path) -> Curves:
    """The curves train.log holds, named and chosen by the sinks' rules, values as float32 (as stored)."""
    out: Curves = {}
    for line in (run_dir / "train.log").read_text().splitlines():
        record = json.loads(line)
        section = section_for(record["event"])
        if section is not None:
            for tag, value in curve_values(section, record).items():
                out.setdefault(tag, []).append((record["step"], float(np.float32(value))))
    return out
