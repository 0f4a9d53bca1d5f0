"""The training core as a library: a Trainer fed cached Carbon features, then its skill.

What a research ablation that does not need the main job looks like:

1. pooled Carbon states come from the feature cache (``bridge.encode_with_cache``:
   Carbon runs once per (window, locus), later reads are cache hits);
2. ``encode_training_batch`` turns stream tuples into a ``TrainerBatch``;
3. a ``Trainer`` (predictor + action encoder, AdamW, one jitted step) trains on them,
   dispatching steps without waiting and fetching their scalars in bulk;
4. ``Trainer.eval_step`` on held-out tuples gives the skill over the no-change
   baseline (``compute_skill_metrics`` is the same function, callable on any arrays).

    python examples/library_use.py [--work_dir DIR] [--steps 100] [any main-job flag ...]

Extra flags (e.g. ``--d_hidden=64``) change the config built from the embedded default
(``configs/tiny.flags``). The stand-in Carbon and a synthetic snapshot are created in
``--work_dir`` when missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_inputs(work_dir: Path) -> tuple[Path, Path]:
    """The compositional stand-in Carbon and a synthetic snapshot (made once)."""
    from bridge import write_standin

    from geno_lewm_jax.data import make_synthetic_snapshot

    model_dir, dataset_dir = work_dir / "standin-carbon", work_dir / "synthetic-snapshot"
    if not (model_dir / "config.json").exists():
        write_standin(model_dir, seed=0, embeddings="compositional")
    if not (dataset_dir / "dataset_manifest.json").exists():
        make_synthetic_snapshot(dataset_dir, seed=0)
    return model_dir, dataset_dir


def main(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="", help="inputs and the feature cache (default: a temporary dir)")
    parser.add_argument("--steps", type=int, default=100)
    args, flags = parser.parse_known_args(argv)
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="library-use-"))
    model_dir, dataset_dir = build_inputs(work_dir)

    from bridge import CarbonEncoder, FeatureCache, encode_with_cache

    from geno_lewm_jax.data import TupleStream, load_snapshot
    from geno_lewm_jax.flags import config_from_argv
    from geno_lewm_jax.model import build_action_encoder, build_predictor
    from geno_lewm_jax.training import Trainer, encode_training_batch

    config = config_from_argv([
        "library-use", f"--flagfile={REPO / 'configs' / 'tiny.flags'}", f"--model_dir={model_dir}",
        f"--dataset_dir={dataset_dir}", f"--max_steps={args.steps}", "--nobootstrap_missing", *flags,
    ])
    encoder = CarbonEncoder.from_config(config, device="cpu")
    cache = FeatureCache(work_dir / "feature-cache")

    def batch_of(tuples, k):
        return encode_training_batch(
            encoder=encoder, tuples=tuples, k=k, max_window_bp=config.action.max_window_bp,
            encode_fn=lambda seqs, loci: encode_with_cache(encoder, cache, seqs, loci),
        )

    snapshot = load_snapshot(dataset_dir)
    train = TupleStream.from_config(snapshot, config)
    held_out = [t for b in TupleStream.from_config(snapshot, config, split="validation").take(4) for t in b.tuples]
    val_batch = batch_of(held_out, max(len(t.edits) for t in held_out))

    trainer = Trainer(build_predictor(config, seed=1), build_action_encoder(config, seed=2), None, config,
                      total_steps=config.training.max_steps)
    before = trainer.eval_step(val_batch).skill.to_dict()
    pending = [trainer.dispatch_step(batch_of(b.tuples, b.k_bucket), step)
               for step, b in enumerate(train.take(args.steps), 1)]
    last = trainer.resolve_steps(pending)[-1]
    after = trainer.eval_step(val_batch).skill.to_dict()

    print(f"{'':>10} {'val_delta_r2':>13} {'val_cos_skill':>14}")
    for name, row in (("untrained", before), (f"step {args.steps}", after)):
        print(f"{name:>10} {row['val_delta_r2']:>13.4f} {row['val_cos_skill']:>14.4f}")
    print(f"final training loss {last.loss:.5g}; feature cache: {len(cache)} states")
    return {"before": before["val_delta_r2"], "after": after["val_delta_r2"], "loss": last.loss}


if __name__ == "__main__":
    main(sys.argv[1:])
