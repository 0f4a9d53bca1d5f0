"""The assertion every fault case shares: one typed line, of the expected code, and no traceback."""

from __future__ import annotations


def assert_one_typed_line(err: str, code_prefix: str) -> str:
    """``err`` holds exactly one ``error[...]`` line, of ``code_prefix``, and no traceback; returns it."""
    assert "Traceback" not in err, err[-3000:]
    typed = [line for line in err.splitlines() if line.startswith("error[")]
    assert len(typed) == 1, err[-3000:]
    assert typed[0].startswith(f"error[{code_prefix}"), typed[0]
    return typed[0]


class HashEncoder:
    """A Carbon stand-in for in-process runs: a unit state per (window, locus) drawn from their hash.

    Deterministic, instant and torch-free, so a run costs the tiny predictor's compile and little else.
    """

    d_state = 64  # configs/tiny.flags
    contract = "l2_normalized_v2"
    identity = "hash-encoder/1"

    def encode_batch(self, sequences, loci):
        import hashlib

        import numpy as np

        out = np.empty((len(sequences), self.d_state), dtype=np.float32)
        for i, (seq, locus) in enumerate(zip(sequences, loci)):
            seed = int.from_bytes(hashlib.sha256(f"{seq}|{locus}".encode()).digest()[:8], "little")
            vec = np.random.default_rng(seed).standard_normal(self.d_state)
            out[i] = vec / np.linalg.norm(vec)
        return out

    def encode_batch_jax(self, sequences, loci):
        return self.encode_batch(sequences, loci)
