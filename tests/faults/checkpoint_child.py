"""A child process for the SIGKILL-during-save faults: resume from a checkpoint store, check it, keep saving.

``python checkpoint_child.py DIR LAST``: restore the newest readable checkpoint of DIR,
check that its arrays and meta are exactly what step N's save wrote (exit 3 if not),
print ``resumed N``, then save steps N+1..LAST, printing ``saving S`` before each save
and ``committed S`` once it is durable. The parent kills it at random points in between.
"""

from __future__ import annotations

import sys

import numpy as np


def state_for(step: int) -> dict[str, np.ndarray]:
    """The arrays step ``step`` saves: big enough (~4 MB) that a save takes a while."""
    rng = np.random.default_rng(step)
    return {"w": rng.standard_normal((1024, 1024)).astype(np.float32), "b": np.full((7,), step, np.int32)}


def main(directory: str, last: int) -> int:
    import jax
    import jax.numpy as jnp

    from geno_lewm_jax.checkpointing import CheckpointStore

    store = CheckpointStore(directory, keep_latest=2)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state_for(0))
    restored = store.restore_latest(abstract)
    step = 0
    if restored is not None:
        step = restored.step
        expected = state_for(step)
        exact = restored.meta == {"step": step, "run": "sigkill"} and all(
            np.array_equal(np.asarray(restored.state[k]), expected[k]) for k in expected
        )
        if not exact:
            print(f"mismatch at {step}", flush=True)
            return 3
    print(f"resumed {step}", flush=True)
    while step < last:
        step += 1
        state = {k: jnp.asarray(v) for k, v in state_for(step).items()}
        print(f"saving {step}", flush=True)
        store.save(step, state, {"step": step, "run": "sigkill"}, on_commit=lambda s: print(f"committed {s}", flush=True))
        store.wait()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
