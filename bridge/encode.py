"""``python -m bridge.encode``: pre-fill the feature cache for a dataset snapshot.

Takes the run's flags (``--flagfile=configs/tiny.flags`` etc.; the cache is
``--feature_cache_dir``), replays the tuple stream the training job will
read for ``--epochs`` epochs, and encodes every (window, locus) state it
will ask for that the cache lacks: sources and every step's target. With
``--num_processes`` P, process ``--process_id`` p encodes only windows whose
sha256 falls in its share, so P processes together encode each key once.
Prints one JSON summary line.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterator, Sequence

from absl import flags

from geno_lewm_jax import flags as flag_defs
from geno_lewm_jax.cli import run_cli
from geno_lewm_jax.errors import InvalidConfigError

FLUSH_KEYS = 64  # pending keys encoded together (bucketed inside the encoder)


def define_flags(fv: flags.FlagValues) -> None:
    flag_defs.define_flags(fv)
    flags.DEFINE_integer("epochs", 1, "Epochs of the tuple stream to cover.", flag_values=fv)
    flags.DEFINE_list("splits", ["train"], "Streams to cover: train and/or validation.", flag_values=fv)
    flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.", flag_values=fv)


def owns(window: str, process_id: int, num_processes: int) -> bool:
    """Deterministic share of a window (by its canonical sha256) among the processes."""
    digest = hashlib.sha256(window.upper().encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % num_processes == process_id


def plan_streams(config, splits: Sequence[str], epochs: int) -> list[tuple[object, int]]:
    """(the global tuple stream, batches to read) per split: what training reads in ``epochs``."""
    from geno_lewm_jax.data import TupleStream, load_snapshot

    snapshot = load_snapshot(config.data.dataset_dir)
    out = []
    for split in splits:
        stream = TupleStream.from_config(snapshot, config, split=split, process_index=0, process_count=1)
        out.append((stream, math.ceil(epochs * stream.tuples_per_epoch / stream.batch_size)))
    return out


def stream_states(config, plan: Sequence[tuple[object, int]]) -> Iterator[list[tuple[str, int | None]]]:
    """The (window, locus) states of every planned batch, batch by batch (training's own rule)."""
    from geno_lewm_jax.training.carbon_batches import state_pairs

    for stream, n_batches in plan:
        for _ in range(n_batches):
            batch = stream.next_batch()
            yield [s for t in batch.tuples for s in state_pairs(t, config.encoder.state_contract)]


def prefill(config, *, epochs: int = 1, splits: Sequence[str] = ("train",), progress: bool = False) -> dict:
    """Encode the missing states of this process's share; returns the summary."""
    from bridge.cache import FeatureCache
    from bridge.cached import cache_keys, encode_with_cache
    from bridge.encoder import CarbonEncoder

    from geno_lewm_jax.config import feature_cache_path

    cache_dir = feature_cache_path(config)
    if cache_dir is None:
        raise InvalidConfigError(
            "encoder.feature_cache_dir is empty and encoder.feature_cache is off; the pre-fill needs a cache",
            details={"field": "encoder.feature_cache_dir"},
            remediation="pass --feature_cache (the run dir's cache) or --feature_cache_dir=/path/to/cache",
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidConfigError(f"epochs={epochs!r} must be an integer >= 1", details={"field": "epochs"})
    bad = [s for s in splits if s not in ("train", "validation")]
    if bad or not splits:
        raise InvalidConfigError(f"splits={list(splits)} must name train and/or validation", details={"field": "splits"})
    pid, nproc = config.runtime.process_id, config.runtime.num_processes
    encoder = CarbonEncoder.from_config(config)
    cache = FeatureCache(cache_dir)
    seen: set[bytes] = set()
    pending: list[tuple[str, int | None]] = []
    counts = {"states": 0, "unique_owned": 0, "already_cached": 0, "encoded": 0}

    def flush() -> None:
        if pending:
            encode_with_cache(encoder, cache, [w for w, _ in pending], [p for _, p in pending])
            counts["encoded"] += len(pending)
            pending.clear()

    plan = plan_streams(config, splits, epochs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(n for _, n in plan), unit="batch", desc=f"encode p{pid}/{nproc}", file=sys.stderr)
    for states in stream_states(config, plan):
        counts["states"] += len(states)
        mine = [(w, p) for w, p in states if owns(w, pid, nproc)]
        keys = cache_keys(encoder, [w for w, _ in mine], [p for _, p in mine]) if mine else []
        for (window, locus), key in zip(mine, keys):
            digest = key.digest()
            if digest in seen:
                continue
            seen.add(digest)
            counts["unique_owned"] += 1
            if key in cache:
                counts["already_cached"] += 1
            else:
                pending.append((window, locus))
        if len(pending) >= FLUSH_KEYS:
            flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(encoded=counts["encoded"] + len(pending), refresh=False)
    flush()
    if bar is not None:
        bar.close()
    cache.close()
    return {
        **counts,
        "process_id": pid,
        "num_processes": nproc,
        "epochs": epochs,
        "splits": list(splits),
        "contract": encoder.contract,
        "identity": encoder.identity,
        "cache_dir": str(cache.root),
    }


def main(argv: list[str]) -> int:
    def body() -> int:
        fv = flags.FlagValues()
        define_flags(fv)
        rest = flag_defs.parse_argv(fv, argv, usage=__doc__ or "")
        if len(rest) > 1:
            raise InvalidConfigError(f"unexpected positional arguments: {' '.join(rest[1:])}")
        config = flag_defs.config_from_flags(fv)
        summary = prefill(config, epochs=fv["epochs"].value, splits=fv["splits"].value, progress=fv["progress"].value)
        print(json.dumps(summary, sort_keys=True))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
