"""Collapse-metric and KL speed against geno-lewm 0.2.1, same process, same inputs.

    /work/venv/bin/python bench/collapse.py [--repeats 20] [--n 64] [--d 1024] [--threads N]

Inputs: N rows of unit-norm predictions and of targets near them, D dims,
float32 (what the monitor sees). One timed call is what a caller waits for:

* ``collapse_metrics``: ours = ``compute_collapse_metrics`` on device arrays
  (validation, one jitted pass, one small device-to-host transfer); reference =
  its ``compute_collapse_metrics`` on torch tensors (conversion to Python lists
  and the float64 pure-Python loops).
* ``kl``: ours = the jitted float32 ``lejepa_kl_regularizer`` (Gram identity,
  SVD of the N x D rows) plus fetching the scalar; reference = its
  ``lejepa_kl_regularizer`` (float64 D x D covariance, ``eigvalsh``).

One JSON line per case with both medians (ms) and ``speedup`` = reference / ours
(goals: metrics >= 100, KL >= 10). ``--threads N`` pins the process to N cores
and gives torch N threads. OpenBLAS (behind jaxlib's LAPACK kernels) runs on one
thread unless OPENBLAS_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench/train_step.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="cores for the whole process (0: all)")
    args = parser.parse_args()
    if args.threads:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from geno_lewm.predictor.losses import lejepa_kl_regularizer as ref_kl
    from geno_lewm.training import compute_collapse_metrics as ref_metrics

    from geno_lewm_jax.objective import lejepa_kl_regularizer
    from geno_lewm_jax.training import compute_collapse_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((args.n, args.d)).astype(np.float32)
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    target = pred + 0.1 * rng.standard_normal((args.n, args.d)).astype(np.float32)
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    p_dev, t_dev = jnp.asarray(pred), jnp.asarray(target)
    p_torch, t_torch = torch.from_numpy(pred), torch.from_numpy(target)
    kl = jax.jit(lejepa_kl_regularizer)

    cases = {
        "collapse_metrics": (
            lambda: compute_collapse_metrics(p_dev, t_dev, kl_reg=1.0),
            lambda: ref_metrics(p_torch, t_torch, kl_reg=1.0),
        ),
        "kl": (lambda: float(kl(t_dev)), lambda: float(ref_kl(t_torch))),
    }
    for name, (ours, reference) in cases.items():
        ours_ms = 1000 * median_seconds(ours, args.repeats)
        ref_ms = 1000 * median_seconds(reference, max(3, args.repeats // 4))
        print(
            json.dumps(
                {
                    "case": name,
                    "n": args.n,
                    "d": args.d,
                    "ours_median_ms": round(ours_ms, 3),
                    "reference_median_ms": round(ref_ms, 2),
                    "speedup": round(ref_ms / ours_ms, 1),
                    "torch_threads": torch.get_num_threads(),
                    "cores": len(os.sched_getaffinity(0)),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
