"""Sweeps: many variants of one run trained together in one vmapped step (``--sweep``).

:mod:`~geno_lewm_jax.sweep.spec` parses ``--sweep`` into variants (torch- and
jax-free, so config validation can use it); :mod:`~geno_lewm_jax.sweep.trainer`
holds the stacked :class:`~geno_lewm_jax.sweep.trainer.SweepTrainer`;
:mod:`~geno_lewm_jax.sweep.results` writes the side-by-side summaries.
"""

from geno_lewm_jax.sweep.spec import (
    SWEEPABLE,
    SweepSpec,
    SweepVariant,
    per_variant,
    split_variants,
    sweep_spec,
    variant_key,
)

__all__ = ["SWEEPABLE", "SweepSpec", "SweepVariant", "per_variant", "split_variants", "sweep_spec", "variant_key"]
