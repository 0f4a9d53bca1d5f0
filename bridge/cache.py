"""Content-addressed cache of pooled Carbon features (float32), safe under crashes and concurrent readers.

Layout of a cache directory::

    cache.json          format marker
    shard-00000.f32     append-only records: header | float32 vector | crc32
    index.bin           append-only 64-byte entries: key digest -> (shard, offset, length, crc) | crc32
    writer.lock         flock'ed by the one process appending at a time

A writer appends records to a shard, flushes them, and only then appends
their index entries; an entry is the commit. A crash can leave bytes after
the last entry of a shard or a torn tail on the index: readers never see
either (they read whole entries only) and the next writer trims both under
the lock. Every record carries a crc32 over its header and vector, checked
on each read, so a flipped or truncated shard raises ``CacheCorruptError``
naming the shard. Readers keep the index in a dict (O(1) lookups) and read
vectors through read-only memory maps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import mmap
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from geno_lewm_jax.errors import CacheCorruptError, CacheWriteError, InputError
from bridge.contracts import CONTRACTS, NO_LOCUS

FORMAT = "geno-lewm-jax/feature-cache"
VERSION = 1
_META = "cache.json"
_INDEX = "index.bin"
_LOCK = "writer.lock"
_RECORD_MAGIC = b"GLFR"
_ENTRY_MAGIC = b"GLFI"
_HEAD = struct.Struct("<4sB3xIq32s32s")  # magic, contract, d, locus, window sha256, identity sha256
_ENTRY_BODY = struct.Struct("<4s32sIQIIB3x")  # magic, key, shard, offset, length, record crc, contract
_ENTRY = _ENTRY_BODY.size + 4
_CRC = struct.Struct("<I")
_CONTRACT_CODES = {name: i + 1 for i, name in enumerate(CONTRACTS)}
DEFAULT_SHARD_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """What a cached feature is: a window (by sha256), the encoder identity, the locus and the contract."""

    window_sha256: str
    identity: str
    locus: int | None
    contract: str

    def __post_init__(self) -> None:
        try:
            ok = len(bytes.fromhex(self.window_sha256)) == 32
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError("CacheKey.window_sha256 must be 64 hex digits", details={"field": "window_sha256"})
        if not isinstance(self.identity, str) or not self.identity:
            raise InputError("CacheKey.identity must be a non-empty string", details={"field": "identity"})
        if self.locus is not None and (isinstance(self.locus, bool) or not isinstance(self.locus, int) or self.locus < 0):
            raise InputError(f"CacheKey.locus must be None or an int >= 0, got {self.locus!r}", details={"field": "locus"})
        if self.contract not in _CONTRACT_CODES:
            raise InputError(f"CacheKey.contract {self.contract!r} is not one of {CONTRACTS}", details={"field": "contract"})

    @property
    def locus_code(self) -> int:
        return NO_LOCUS if self.locus is None else self.locus

    @property
    def identity_digest(self) -> bytes:
        return hashlib.sha256(self.identity.encode("utf-8")).digest()

    def digest(self) -> bytes:
        """32-byte content address of the key."""
        h = hashlib.sha256(b"geno-lewm-jax/feature-key/1\0")
        h.update(bytes.fromhex(self.window_sha256))
        h.update(self.identity_digest)
        h.update(struct.pack("<qB", self.locus_code, _CONTRACT_CODES[self.contract]))
        return h.digest()


@dataclasses.dataclass(frozen=True)
class _Entry:
    shard: int
    offset: int
    length: int
    crc: int


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write every byte (os.write/pwrite may return short)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[n:]
        offset = None if offset is None else offset + n


def _record(key: CacheKey, vector: np.ndarray) -> bytes:
    head = _HEAD.pack(
        _RECORD_MAGIC,
        _CONTRACT_CODES[key.contract],
        vector.size,
        key.locus_code,
        bytes.fromhex(key.window_sha256),
        key.identity_digest,
    )
    body = head + vector.astype("<f4", copy=False).tobytes()
    return body + _CRC.pack(zlib.crc32(body))


class FeatureCache:
    """Pooled features keyed by :class:`CacheKey`; any number of readers, writers serialised by a lock.

    Processes share a directory freely; within a process, give each thread its own instance.
    """

    def __init__(self, path: str | os.PathLike[str], *, shard_bytes: int = DEFAULT_SHARD_BYTES, durable: bool = True) -> None:
        self.root = Path(path).expanduser()
        self.shard_bytes = int(shard_bytes)
        self.durable = durable
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_meta()
        self._entries: dict[bytes, _Entry] = {}
        self._ends: dict[int, int] = {}
        self._index_pos = 0
        self._maps: dict[int, mmap.mmap] = {}
        self._files: dict[int, object] = {}
        self.refresh()

    # --- files -----------------------------------------------------------------------------
    def _check_meta(self) -> None:
        meta = self.root / _META
        if not meta.exists():
            tmp = meta.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n", encoding="utf-8")
            os.replace(tmp, meta)
        try:
            payload = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            payload = None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != VERSION:
            raise CacheCorruptError(
                f"{meta}: not a version-{VERSION} feature cache marker",
                details={"file": str(meta)},
                remediation="point the cache at an empty directory or one this version created",
            )

    def shard_path(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}.f32"

    def _corrupt(self, path: Path, why: str) -> CacheCorruptError:
        return CacheCorruptError(
            f"{path}: {why}",
            details={"file": str(path)},
            remediation="delete this shard and index.bin (the cache refills), or restore it from a copy",
        )

    def _map(self, shard: int, need: int) -> mmap.mmap:
        """A read-only map of the shard covering ``need`` bytes; the size is re-checked on every read
        so a shard truncated under a live reader raises instead of faulting."""
        path = self.shard_path(shard)
        handle = self._files.get(shard)
        if handle is None:
            try:
                handle = self._files[shard] = open(path, "rb")
            except FileNotFoundError:
                raise self._corrupt(path, "shard is missing but the index references it") from None
        size = os.fstat(handle.fileno()).st_size
        if size < need:
            raise self._corrupt(path, f"shard is truncated ({size} bytes, index needs {need})")
        mm = self._maps.get(shard)
        if mm is None or len(mm) < need:
            if mm is not None:
                mm.close()
            mm = self._maps[shard] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return mm

    # --- index -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read index entries committed since the last look (whole entries only; a torn tail waits)."""
        index = self.root / _INDEX
        if not index.exists():
            return
        with open(index, "rb") as handle:
            handle.seek(self._index_pos)
            data = handle.read()
        whole = len(data) - len(data) % _ENTRY
        for pos in range(0, whole, _ENTRY):
            chunk = data[pos : pos + _ENTRY]
            body, (crc,) = chunk[:-4], _CRC.unpack(chunk[-4:])
            magic, key, shard, offset, length, rec_crc, _ = _ENTRY_BODY.unpack(body)
            if magic != _ENTRY_MAGIC or zlib.crc32(body) != crc:
                raise self._corrupt(index, f"entry {(self._index_pos + pos) // _ENTRY} fails its checksum")
            self._entries.setdefault(key, _Entry(shard, offset, length, rec_crc))
            self._ends[shard] = max(self._ends.get(shard, 0), offset + length)
        self._index_pos += whole
        for shard, end in self._ends.items():
            path = self.shard_path(shard)
            size = path.stat().st_size if path.exists() else -1
            if size < end:
                raise self._corrupt(path, f"shard is truncated or missing ({max(size, 0)} bytes, index needs {end})")

    def _index_grew(self) -> bool:
        try:
            return (self.root / _INDEX).stat().st_size >= self._index_pos + _ENTRY
        except FileNotFoundError:
            return False

    # --- reads -----------------------------------------------------------------------------
    def __len__(self) -> int:
        self.refresh()
        return len(self._entries)

    def __contains__(self, key: CacheKey) -> bool:
        return self._lookup(key.digest()) is not None

    def _lookup(self, digest: bytes) -> _Entry | None:
        entry = self._entries.get(digest)
        if entry is None and self._index_grew():
            self.refresh()
            entry = self._entries.get(digest)
        return entry

    def _read(self, entry: _Entry, key: CacheKey | None) -> np.ndarray:
        path = self.shard_path(entry.shard)
        mm = self._map(entry.shard, entry.offset + entry.length)
        rec = mm[entry.offset : entry.offset + entry.length]
        body, (crc,) = rec[:-4], _CRC.unpack(rec[-4:])
        if zlib.crc32(body) != crc or crc != entry.crc:
            raise self._corrupt(path, f"record at byte {entry.offset} fails its checksum")
        magic, contract, d, locus, window, ident = _HEAD.unpack_from(body)
        if magic != _RECORD_MAGIC or _HEAD.size + 4 * d != len(body):
            raise self._corrupt(path, f"record at byte {entry.offset} has a bad header")
        if key is not None and (
            (window, ident, locus, contract)
            != (bytes.fromhex(key.window_sha256), key.identity_digest, key.locus_code, _CONTRACT_CODES[key.contract])
        ):
            raise self._corrupt(path, f"record at byte {entry.offset} belongs to another key")
        return np.frombuffer(body, dtype="<f4", count=d, offset=_HEAD.size).astype(np.float32)

    def get(self, key: CacheKey) -> np.ndarray | None:
        """The float32 vector stored for ``key``, or None."""
        entry = self._lookup(key.digest())
        return None if entry is None else self._read(entry, key)

    def get_many(self, keys: Sequence[CacheKey]) -> list[np.ndarray | None]:
        return [self.get(k) for k in keys]

    def verify(self) -> int:
        """Check every committed record's checksum; returns how many were checked."""
        self.refresh()
        for entry in self._entries.values():
            self._read(entry, None)
        return len(self._entries)

    # --- writes ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        with open(self.root / _LOCK, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _sync(self, fd: int) -> None:
        if self.durable:
            os.fsync(fd)

    def put_many(self, keys: Sequence[CacheKey], vectors: Sequence[np.ndarray] | np.ndarray) -> int:
        """Append the keys not already present; returns how many were written.

        A failed write (disk full...) raises CacheWriteError; the index entries are the
        commit, so readers never see the part that was written and the next writer trims it.
        """
        try:
            return self._put_many(keys, vectors)
        except OSError as exc:
            raise CacheWriteError(
                f"cannot write the feature cache {self.root}: {exc.strerror or exc}",
                details={"path": str(self.root), "errno": exc.errno},
                remediation="Free space on the cache's file system or point --feature_cache_dir elsewhere, then rerun.",
            ) from None

    def _put_many(self, keys: Sequence[CacheKey], vectors: Sequence[np.ndarray] | np.ndarray) -> int:
        if len(keys) != len(vectors):
            raise InputError(f"put_many got {len(keys)} keys and {len(vectors)} vectors", details={"field": "vectors"})
        prepared = []
        for i, (key, vec) in enumerate(zip(keys, vectors)):
            arr = np.asarray(vec, dtype=np.float32)
            if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
                raise InputError(f"vectors[{i}] must be a non-empty finite 1-D float vector", details={"field": f"vectors[{i}]"})
            prepared.append((key, arr))
        with self._writer_lock():
            self.refresh()
            index_path = self.root / _INDEX
            fd = os.open(index_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size % _ENTRY:  # a writer died mid-entry: drop its torn tail
                    os.ftruncate(fd, size - size % _ENTRY)
                todo: dict[bytes, tuple[CacheKey, np.ndarray]] = {}
                for key, arr in prepared:
                    digest = key.digest()
                    if digest not in self._entries:
                        todo.setdefault(digest, (key, arr))
                if not todo:
                    return 0
                shard = max(self._ends, default=0)
                if self._ends.get(shard, 0) >= self.shard_bytes:
                    shard += 1
                end = self._ends.get(shard, 0)
                records = [(digest, _record(key, arr)) for digest, (key, arr) in todo.items()]
                entries = []
                offset = end
                for digest, rec in records:
                    body = _ENTRY_BODY.pack(_ENTRY_MAGIC, digest, shard, offset, len(rec), _CRC.unpack(rec[-4:])[0], rec[4])
                    entries.append(body + _CRC.pack(zlib.crc32(body)))
                    offset += len(rec)
                sfd = os.open(self.shard_path(shard), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    os.ftruncate(sfd, end)  # drop bytes a crashed writer left after the last commit
                    _write_all(sfd, b"".join(rec for _, rec in records), end)
                    self._sync(sfd)
                finally:
                    os.close(sfd)
                _write_all(fd, b"".join(entries))
                self._sync(fd)
            finally:
                os.close(fd)
            self.refresh()
        return len(records)

    def put(self, key: CacheKey, vector: np.ndarray) -> bool:
        return self.put_many([key], [vector]) == 1

    def close(self) -> None:
        for mm in self._maps.values():
            mm.close()
        for handle in self._files.values():
            handle.close()
        self._maps.clear()
        self._files.clear()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
