"""Training preflight, geno-lewm 0.2.1 vs ours, on the same snapshot and Carbon dir in one process.

    /work/venv/bin/python bench/preflight.py [--data_mib 32 --files 4 --weights_mib 256 --repeats 3]

Prints one JSON line per case: best-of-N wall seconds for each side and
reference/ours. Probes are injected (no torch import, no find_spec) except in
the ``default_probes`` case, which runs both sides' own probes after a warmup
(ours asks JAX for devices; the reference's returns at once for device=cpu).
The snapshot builders are the ones the tests use.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _test_builders():
    spec = importlib.util.spec_from_file_location("preflight_test_builders", REPO / "tests/training/test_preflight.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_mib", type=int, default=32, help="size of each extra listed data file")
    parser.add_argument("--files", type=int, default=4, help="extra listed data files in the big snapshot")
    parser.add_argument("--weights_mib", type=int, default=256, help="size of the big Carbon weights file")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from geno_lewm.training import preflight as ref

    from geno_lewm_jax.config import load_config
    from geno_lewm_jax.training import preflight as ours

    b = _test_builders()
    mib = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = b.write_snapshot(root / "small")
        big = b.write_snapshot(root / "big", extra_bytes=(args.data_mib * mib,) * args.files)
        carbon_small = b.write_carbon(root / "carbon-small")
        carbon_big = b.write_carbon(root / "carbon-big", weight_bytes=args.weights_mib * mib)
        yaml_path = root / "train.yaml"
        yaml_path.write_text("predictor:\n  d_state: 64\nencoder:\n  state_layer: 2\nruntime:\n  device: cpu\n")
        config = load_config(overrides={"predictor.d_state": 64, "encoder.state_layer": 2, "runtime.device": "cpu"})

        def ref_fn(dataset, carbon, probes=True):
            request = ref.TrainingPreflightRequest(dataset, carbon, yaml_path, root / "ref-run")
            if not probes:
                return lambda: ref.build_training_preflight_report(request)
            return lambda: ref.build_training_preflight_report(
                request,
                dependency_probe=lambda n, r: ref.DependencyProbe(n, n, r, True, None, ""),
                accelerator_probe=lambda d, r, m: ref.AcceleratorProbe(d, r, True, 1, None, None, m, ""),
            )

        def our_fn(dataset, carbon, probes=True, **options):
            request = ours.TrainingPreflightRequest(dataset, carbon, root / "run", config, config_path=yaml_path, **options)
            if not probes:
                return lambda: ours.build_training_preflight_report(request)
            return lambda: ours.build_training_preflight_report(request, dependency_probe=b.dep_ok, accelerator_probe=b.acc_ok)

        cases = [
            ("small_snapshot", ref_fn(small, carbon_small), our_fn(small, carbon_small)),
            (f"snapshot_{args.files}x{args.data_mib}MiB", ref_fn(big, carbon_small), our_fn(big, carbon_small)),
            (f"weights_{args.weights_mib}MiB_sha256", ref_fn(small, carbon_big), our_fn(small, carbon_big)),
            (f"weights_{args.weights_mib}MiB_stat", ref_fn(small, carbon_big), our_fn(small, carbon_big, weights_identity="stat")),
            ("default_probes", ref_fn(small, carbon_small, False), our_fn(small, carbon_small, False)),
        ]
        for name, ref_call, our_call in cases:
            ref_call(), our_call()  # warm imports and the page cache
            ref_s, our_s = _best(ref_call, args.repeats), _best(our_call, args.repeats)
            line = {"case": name, "reference_s": round(ref_s, 4), "ours_s": round(our_s, 4), "ratio": round(ref_s / our_s, 2)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
