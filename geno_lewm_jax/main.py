"""``python -m geno_lewm_jax.main --flagfile=configs/carbon.flags``: the training job.

This file only parses flags into the frozen config and hands it on; the work
lives in testable modules.
"""

from __future__ import annotations

import os
import sys

# Carbon (torch) shares the accelerator with JAX: do not let XLA grab most of its memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# jaxlib's LAPACK (the KL's SVD) runs on OpenBLAS, whose spinning worker threads stall XLA's on a busy CPU.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import flags

from geno_lewm_jax import flags as flag_defs
from geno_lewm_jax.cli import run_cli

FLAGS = flags.FLAGS
flag_defs.define_flags(FLAGS)


def main(argv: list[str]) -> int:
    def body() -> int:
        rest = flag_defs.parse_argv(FLAGS, argv, usage=__doc__ or "")
        if len(rest) > 1:
            from geno_lewm_jax.errors import InvalidConfigError

            raise InvalidConfigError(f"unexpected positional arguments: {' '.join(rest[1:])}")
        config = flag_defs.config_from_flags(FLAGS)
        from geno_lewm_jax.job import run_job

        return run_job(config, config_path=FLAGS.config_yaml)

    return run_cli(body)


def _start_work_left() -> bool:
    carbon = sys.modules.get("geno_lewm_jax.training.carbon")
    return carbon is not None and carbon.unfinished_start_work()


if __name__ == "__main__":
    from geno_lewm_jax.cli import exit_process

    code = main(sys.argv)
    exit_process(code, abandon_threads=_start_work_left())
