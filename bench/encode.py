"""Windows/s of ``bridge.CarbonEncoder`` against geno-lewm 0.2.1's ``CarbonStateEncoder``, same run, same stand-in.

    /work/venv/bin/python bench/encode.py [--repeats 5] [--batch 8] [--window_bp 4096,12288] [--torch_threads N]

Both sides load the stand-in Carbon written by ``bridge.write_standin`` (fp32,
``state_layer=2``, radius 8) into one process and encode the same batches.
Each case prints one JSON line: median windows/s of each side over
``--repeats`` timed calls (after one warm-up call each, calls interleaved),
and ours/reference. Our side runs both contracts; the reference has one.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402


def _windows(rng: np.random.Generator, n: int, bp: int) -> list[str]:
    return ["".join(rng.choice(np.array(list("ACGT")), size=bp)) for _ in range(n)]


def _median_rate(fn, n_windows: int, repeats: int) -> float:
    return n_windows / median_seconds(fn, repeats, warmup=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window_bp", default="4096,12288")
    parser.add_argument("--torch_threads", type=int, default=0, help="torch intra-op threads for both sides (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    from geno_lewm.encoder.carbon import CarbonStateEncoder

    from bridge import CarbonEncoder, write_standin

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_standin(Path(tmp) / "carbon", seed=0)
        reference = CarbonStateEncoder(str(model_dir), "main", dtype="fp32", state_layer=2, pool_radius=8)
        ours = {
            contract: CarbonEncoder(model_dir, dtype="fp32", state_layer=2, pool_radius=8, state_contract=contract, device="cpu")
            for contract in ("l2_normalized_v2", "legacy_raw_v1")
        }
        for bp in (int(x) for x in args.window_bp.split(",")):
            for loci_kind in ("centred", "global"):
                seqs = _windows(rng, args.batch, bp)
                loci = [int(rng.integers(0, bp)) for _ in seqs] if loci_kind == "centred" else [None] * len(seqs)
                reference.encode_batch(seqs, loci)
                ref_rate = _median_rate(lambda: reference.encode_batch(seqs, loci), len(seqs), args.repeats)
                for contract, enc in ours.items():
                    enc.encode_batch(seqs, loci)
                    rate = _median_rate(lambda: enc.encode_batch(seqs, loci), len(seqs), args.repeats)
                    print(
                        json.dumps(
                            {
                                "case": f"encode_{bp}bp_b{args.batch}_{loci_kind}_{contract}",
                                "window_bp": bp,
                                "batch": args.batch,
                                "pooling": loci_kind,
                                "contract": contract,
                                "ours_windows_per_s": round(rate, 2),
                                "reference_windows_per_s": round(ref_rate, 2),
                                "ratio": round(rate / ref_rate, 2),
                                "torch_threads": torch.get_num_threads(),
                                "machine": f"{platform.machine()} cpu",
                            }
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
