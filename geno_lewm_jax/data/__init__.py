"""Data layer (torch-free): edits, samplers, the snapshot reader and the tuple stream.

Typical use::

    snapshot = load_snapshot(config.data.dataset_dir)
    train = TupleStream.from_config(snapshot, config)                      # split-aware K-step stream
    held_out = TupleStream.from_config(snapshot, config, split="validation")
    batch = next(train)                                                    # a TupleBatch

See :mod:`geno_lewm_jax.data.stream` for what a batch holds and
:mod:`geno_lewm_jax.data.selection` for the split policy.
"""

from geno_lewm_jax.data.actions import V1_MAX_LEN, EditSpec, EditType, RelEdit, apply_edit, apply_edits
from geno_lewm_jax.data.integrity import sha256_file
from geno_lewm_jax.data.sampling import (
    DEFAULT_EDIT_TYPE_WEIGHTS,
    DEFAULT_ROLLOUT_STEP_MIX,
    EditTypeWeight,
    RolloutStepWeight,
    draw_edit_type_counts,
    draw_rollout_step_counts,
    sample_edit_type,
    sample_rollout_steps,
)
from geno_lewm_jax.data.selection import Selection, legacy_selection, split_selection
from geno_lewm_jax.data.snapshot import Snapshot, SnapshotFile, SplitInfo, VariantShard, WindowRecord, load_snapshot
from geno_lewm_jax.data.sources import (
    DEFAULT_EDIT_SOURCE_COUNTS,
    DEFAULT_SOURCE_FALLBACKS,
    SOURCE_CLINVAR,
    SOURCE_GNOMAD_COMMON,
    SOURCE_SYNTHETIC_INDEL,
    SOURCE_SYNTHETIC_SNV,
    EditSourceCount,
)
from geno_lewm_jax.data.stream import TupleBatch, TupleStream
from geno_lewm_jax.data.synthetic import make_synthetic_snapshot
from geno_lewm_jax.data.synthetic_edits import indel, mnv, uniform_snv
from geno_lewm_jax.data.tuples import TrainingTuple

__all__ = [
    "DEFAULT_EDIT_SOURCE_COUNTS",
    "DEFAULT_EDIT_TYPE_WEIGHTS",
    "DEFAULT_ROLLOUT_STEP_MIX",
    "DEFAULT_SOURCE_FALLBACKS",
    "SOURCE_CLINVAR",
    "SOURCE_GNOMAD_COMMON",
    "SOURCE_SYNTHETIC_INDEL",
    "SOURCE_SYNTHETIC_SNV",
    "V1_MAX_LEN",
    "EditSourceCount",
    "EditSpec",
    "EditType",
    "EditTypeWeight",
    "RelEdit",
    "RolloutStepWeight",
    "Selection",
    "Snapshot",
    "SnapshotFile",
    "SplitInfo",
    "TrainingTuple",
    "TupleBatch",
    "TupleStream",
    "VariantShard",
    "WindowRecord",
    "apply_edit",
    "apply_edits",
    "draw_edit_type_counts",
    "draw_rollout_step_counts",
    "indel",
    "legacy_selection",
    "load_snapshot",
    "make_synthetic_snapshot",
    "mnv",
    "sample_edit_type",
    "sample_rollout_steps",
    "sha256_file",
    "split_selection",
    "uniform_snv",
]
