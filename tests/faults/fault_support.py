"""The assertion every fault case shares: one typed line, of the expected code, and no traceback."""

from __future__ import annotations


def assert_one_typed_line(err: str, code_prefix: str) -> str:
    """``err`` holds exactly one ``error[...]`` line, of ``code_prefix``, and no traceback; returns it."""
    assert "Traceback" not in err, err[-3000:]
    typed = [line for line in err.splitlines() if line.startswith("error[")]
    assert len(typed) == 1, err[-3000:]
    assert typed[0].startswith(f"error[{code_prefix}"), typed[0]
    return typed[0]
