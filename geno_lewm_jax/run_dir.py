"""The run directory: an exclusive lock, atomic strict-JSON artifacts and path hygiene."""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from geno_lewm_jax.errors import InputError, RunDirLockedError

LOCK_NAME = ".lock"


def _strictify(value: Any) -> Any:
    """Replace non-finite floats by None so the JSON has no NaN/Infinity tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strictify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strictify(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / jax scalar
        return _strictify(value.item())
    return value


def strict_json(payload: Any) -> str:
    """2-space, sorted-key JSON with a trailing newline; non-finite numbers become null."""
    return json.dumps(_strictify(payload), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; artifacts get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    return write_text_atomic(path, strict_json(payload))


def public_path(path: str | Path, *, root: str | Path | None = None) -> str:
    """A path safe to publish: relative to ``root`` when inside it, else just the file name."""
    p = Path(path)
    if root is not None:
        try:
            return Path(os.path.relpath(p.absolute(), Path(root).absolute())).as_posix()
        except ValueError:
            return p.name
    if p.is_absolute() or ".." in p.parts:
        return p.name
    return p.as_posix()


class RunDirLock:
    """An exclusive lock on a run directory, held by an flock on ``.lock`` (the OS drops it on any exit).

    Release removes ``.lock`` again, so a finished or failed run leaves no trace of it. A
    process that opened the file just before it was removed would lock a dead inode, so
    acquire retries until the locked file is the one at the path.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._handle: Any = None

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_NAME

    def acquire(self) -> "RunDirLock":
        ensure_writable(self.run_dir)
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise RunDirLockedError(
                    f"run directory {self.run_dir} is in use by another process",
                    details={"path": str(self.run_dir)},
                    remediation="Wait for the other run to finish, or use a different --run_dir.",
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._handle = handle  # the file's content is never written: a refused run changes nothing
                return self
            handle.close()  # the holder removed it between our open and our lock: try the new file

    def release(self) -> None:
        if self._handle is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still locked, so no one else holds this inode
            except OSError:
                pass
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def ensure_writable(run_dir: str | Path) -> Path:
    """Create the run directory and prove a file can be written there, or raise InputError."""
    p = Path(run_dir)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise InputError(
            f"run directory {p} is not writable ({exc.strerror or exc})",
            details={"field": "runtime.run_dir", "path": str(p)},
            remediation="Choose a run directory you can write to with --run_dir.",
        ) from None
    return p
