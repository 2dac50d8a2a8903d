"""Decode once: a dataset becomes one uint8 tensor file keyed by the checksum of its source files.

The cache lives in ``<project>/.cache/data`` (ignored by git) or in ``$FER_CACHE``. A key covers
the loader's name and version, its options and the sources' checksums, so a changed source or
option gives a new file and a stale one is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from fer_lib import PROJECT_ROOT
from fer_lib.data import FaceData

CACHE_ENV = "FER_CACHE"
# Bump when a loader's output changes for the same source files.
CACHE_VERSION = 1
FINGERPRINT_CHARS = 16


def cache_dir() -> Path:
    """Where decoded datasets are kept: $FER_CACHE, else ``<project>/.cache/data``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else PROJECT_ROOT / ".cache" / "data"


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) so an unchanged file is read once."""
    path = Path(path).resolve()
    stat = path.stat()
    memo_key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = cache_dir() / "digests.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    memo[memo_key] = h.hexdigest()
    try:
        _atomic_write(memo_path, lambda p: Path(p).write_text(json.dumps(memo, indent=0)))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return memo[memo_key]


def listing_digest(paths: Iterable[Path], base: Path) -> str:
    """sha256 over (relative path, size, mtime) of many image files: cheap, changes when any file does."""
    h = hashlib.sha256()
    for p in sorted(paths):
        stat = p.stat()
        h.update(f"{p.relative_to(base)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_facedata(data: FaceData, path: str | os.PathLike) -> None:
    """Write a :class:`FaceData` as one tensor file (atomically)."""
    state = {
        "name": data.name,
        "classes": list(data.classes),
        "images": data.images.contiguous(),
        "labels": data.labels,
        "split": data.split,
        "soft_labels": data.soft_labels,
        "masks": data.masks,
        "synthetic": data.synthetic,
        "source": data.source,
        "fingerprint": data.fingerprint,
    }
    _atomic_write(Path(path), lambda p: torch.save(state, p))


def load_facedata(path: str | os.PathLike) -> FaceData:
    """Read a file written by :func:`save_facedata`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["classes"] = tuple(state["classes"])
    return FaceData(**state)


def fingerprint(name: str, key: dict[str, Any]) -> str:
    """The digest of a dataset ``name`` for a key (sources' checksums and loader options)."""
    text = json.dumps({"version": CACHE_VERSION, "name": name, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


def cache_path(name: str, key: dict[str, Any]) -> Path:
    """The cache file of a dataset ``name`` for a key: named by its :func:`fingerprint`."""
    return cache_dir() / f"{name}-{fingerprint(name, key)}.pt"


def cached(name: str, key: dict[str, Any], build: Callable[[], FaceData], use_cache: bool = True) -> FaceData:
    """Return the cached dataset for ``key``, or ``build()`` it and store it (when ``use_cache``).

    Either way the data carries ``fingerprint(name, key)``."""
    digest = fingerprint(name, key)

    def fresh() -> FaceData:
        data = build()
        data.fingerprint = digest
        return data

    if not use_cache:
        return fresh()
    path = cache_path(name, key)
    if path.exists():
        try:
            data = load_facedata(path)
            data.fingerprint = digest
            return data
        except Exception:  # a damaged cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    data = fresh()
    try:
        save_facedata(data, path)
    except OSError:
        pass  # no writable cache: still return the decoded data
    return data
