"""Model forward/rollout/action-encoder speed against geno-lewm 0.2.1, same run, same weights.

    /work/venv/bin/python bench/model.py [--repeats 20] [--threads N]

Both sides hold the release-config modules (d_state 1024, A=64, 6 cross + 2 self
blocks) with the same random weights (copied through geno_lewm_jax.interop).
Each case prints one JSON line: median milliseconds per call of each side over
``--repeats`` timed calls (after warm-up calls, which include our compile; the
two sides' calls interleaved), and reference_ms / ours_ms as ``speedup``.
``--threads N`` caps both sides at N compute threads (torch intra-op threads;
XLA's Eigen pool via XLA_FLAGS, set before jax is imported): on a shared
machine, torch's spinning OpenMP threads make 2-thread timings erratic. Ours: the jitted float32 forward of a
split/merged module; ``rollout`` and ``action_encoder`` time the public calls
(input checks, and featurisation of the RelEdits, included).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_ms(ours, reference, repeats: int) -> tuple[float, float]:
    """Median ms per call of each function, calls interleaved after two warm-ups each."""
    for fn in (ours, reference, ours, reference):
        fn()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, sink in ((ours, times[0]), (reference, times[1])):
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def _random_rows(rng: np.random.Generator, batch: int, steps: int):
    from geno_lewm.action import EditType, RelEdit

    def bases(n: int) -> str:
        return "".join(rng.choice(list("ACGT"), size=n))

    shapes = {EditType.SNV: (1, 1), EditType.INS: (1, 6), EditType.DEL: (9, 1), EditType.MNV: (3, 3), EditType.INDEL: (4, 12)}
    kinds = list(shapes)
    rows = []
    for b in range(batch):
        row = []
        for k in range(steps):
            kind = kinds[(b + k) % len(kinds)]
            ref_len, alt_len = shapes[kind]
            ref = bases(ref_len)
            alt = "".join("T" if c != "T" else "A" for c in ref[:alt_len]).ljust(alt_len, "G")
            row.append(RelEdit(int(rng.integers(0, 12_288)), kind, ref, alt))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="compute threads per side (0: each library's default)")
    args = parser.parse_args()
    if args.threads:
        import os

        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
            f" intra_op_parallelism_threads={args.threads}"
        ).strip()

    import jax
    import torch
    from flax import nnx
    from geno_lewm.action import ActionEncoder as RefActionEncoder
    from geno_lewm.predictor import ARPredictor
    from geno_lewm.predictor import Predictor as RefPredictor

    from geno_lewm_jax.interop import from_reference_state_dict
    from geno_lewm_jax.model import ActionEncoder, Predictor, featurize_edits, rollout

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    release = dict(d_state=1024, d_action=64, d_hidden=768, n_heads=8, n_cross_layers=6, n_self_layers=2, ffn_dim=768, max_actions=16)
    ref_p = RefPredictor(**release).eval()
    with torch.no_grad():
        for p in ref_p.parameters():
            p.normal_(0, 0.02)
    ref_a = RefActionEncoder(d_action=64).eval()
    ours_p = nnx.eval_shape(lambda: Predictor(**release, rngs=nnx.Rngs(0)))
    from_reference_state_dict(ours_p, ref_p.state_dict())
    ours_a = nnx.eval_shape(lambda: ActionEncoder(d_action=64, rngs=nnx.Rngs(0)))
    from_reference_state_dict(ours_a, ref_a.state_dict())

    graph_p, params_p = nnx.split(ours_p)
    forward = jax.jit(lambda params, s, a, m: nnx.merge(graph_p, params).forward(s, a, m))
    graph_a, params_a = nnx.split(ours_a)
    encode = jax.jit(lambda params, f: nnx.merge(graph_a, params)(f))

    machine = f"{platform.machine()} CPU, threads {args.threads or 'default'}, torch threads {torch.get_num_threads()}"
    rng = np.random.default_rng(0)

    def emit(case: str, batch: int, steps: int, ours_ms: float, ref_ms: float, max_abs_err: float) -> None:
        print(json.dumps({
            "case": case, "batch": batch, "steps": steps, "ours_ms": round(ours_ms, 3), "reference_ms": round(ref_ms, 3),
            "speedup": round(ref_ms / ours_ms, 2), "max_abs_err": float(max_abs_err), "machine": machine,
        }), flush=True)

    for batch, steps in ((8, 1), (64, 1), (8, 16)):
        state = rng.standard_normal((batch, 1024)).astype(np.float32)
        actions = rng.standard_normal((batch, steps, 64)).astype(np.float32)
        mask = np.ones((batch, steps), bool)
        t_in = [torch.from_numpy(x) for x in (state, actions, mask)]
        j_in = [jax.device_put(x) for x in (state, actions, mask)]
        with torch.no_grad():
            ref_out = ref_p(*t_in).numpy()
            ours_ms, ref_ms = _median_ms(
                lambda: forward(params_p, *j_in).block_until_ready(), lambda: ref_p(*t_in), args.repeats
            )
        err = np.abs(np.asarray(forward(params_p, *j_in)) - ref_out).max()
        emit("predictor_forward", batch, steps, ours_ms, ref_ms, err)

    for batch, steps in ((8, 4), (8, 16)):
        state = rng.standard_normal((batch, 1024)).astype(np.float32)
        actions = rng.standard_normal((batch, steps, 64)).astype(np.float32)
        ar = ARPredictor(ref_p)
        t_state, t_actions = torch.from_numpy(state), torch.from_numpy(actions)
        ref_out = ar.rollout_tensor(t_state, t_actions).numpy()
        j_state, j_actions = jax.device_put(state), jax.device_put(actions)
        ours_ms, ref_ms = _median_ms(
            lambda: rollout(ours_p, j_state, j_actions).block_until_ready(),
            lambda: ar.rollout_tensor(t_state, t_actions),
            args.repeats,
        )
        err = np.abs(np.asarray(rollout(ours_p, j_state, j_actions)) - ref_out).max()
        emit("rollout", batch, steps, ours_ms, ref_ms, err)

    for batch, steps in ((8, 1), (64, 4)):
        rows = _random_rows(rng, batch, steps)
        with torch.no_grad():
            ref_out = ref_a(rows).numpy()
            ours_ms, ref_ms = _median_ms(
                lambda: encode(params_a, featurize_edits(rows)).block_until_ready(), lambda: ref_a(rows), args.repeats
            )
        err = np.abs(np.asarray(encode(params_a, featurize_edits(rows))) - ref_out).max()
        emit("action_encoder_from_reledits", batch, steps, ours_ms, ref_ms, err)


if __name__ == "__main__":
    main()
