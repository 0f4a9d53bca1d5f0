"""File identities and the ``SHA256SUMS`` format of a dataset snapshot.

Hashes are written ``sha256:<64 lowercase hex>`` in JSON (as the reference
does) and as bare hex in ``SHA256SUMS`` (the coreutils layout).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from geno_lewm_jax.errors import DatasetError

CHECKSUMS_NAME = "SHA256SUMS"
_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def file_identity(root: Path, relative: str) -> dict[str, object]:
    """``{path, sha256, size_bytes}`` of a file below ``root``."""
    path = root / relative
    return {"path": relative, "sha256": sha256_file(path), "size_bytes": path.stat().st_size}


def parse_sha256sums(path: Path) -> dict[str, str]:
    """``{relative path: "sha256:<hex>"}``; a malformed line raises naming the file and line.

    Blank and ``#`` lines are skipped; ``*path`` (binary-mode marker) is accepted.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: missing; a snapshot must list every file's hash in {CHECKSUMS_NAME}",
            details={"path": str(path)},
            remediation="restore the file from the snapshot's release",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})", details={"path": str(path)}) from None
    entries: dict[str, str] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not _HEX64.match(parts[0]):
            raise DatasetError(
                f"{path}:{line_no}: expected '<64 hex digits>  <relative path>', got {raw[:120]!r}",
                details={"path": str(path), "line": line_no},
            )
        entries[parts[1].removeprefix("*")] = "sha256:" + parts[0].lower()
    return entries


def write_sha256sums(root: Path, relatives: Iterable[str]) -> Path:
    """Write ``SHA256SUMS`` for ``relatives`` (in the given order)."""
    lines = [f"{sha256_file(root / rel).removeprefix('sha256:')}  {rel}\n" for rel in relatives]
    out = root / CHECKSUMS_NAME
    out.write_text("".join(lines), encoding="utf-8")
    return out


__all__ = ["CHECKSUMS_NAME", "file_identity", "parse_sha256sums", "sha256_bytes", "sha256_file", "write_sha256sums"]
