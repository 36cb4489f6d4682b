"""Atomic files and folders, and JSON-safe values: the one home for how jaxdiv writes results.

A reader never sees half a file or half a folder: JSON goes through a temporary file and an
atomic rename; a folder of results is written into a hidden sibling and renamed into place
(an earlier folder there is replaced only once the new one is complete). ``file_lock`` gives
one writer at a time an exclusive lock that the kernel drops when the writer dies, so a lock is
never left stale and whatever a dead writer left behind can be recognised as such.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiv.errors import JaxdivError


def json_safe(obj: Any) -> Any:
    """``obj`` with NumPy values turned into Python ones and non-finite floats into None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_folder(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Rename the complete folder ``tmp`` to ``out``, replacing an earlier ``out`` whole."""
    tmp, out = Path(tmp), Path(out)
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


@contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary sibling of ``out`` to write into; published as ``out`` on success,
    removed on any error (``out`` is then left as it was)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        yield tmp
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class LockBusy(JaxdivError):
    """Another process (or thread) holds the lock; ``holder`` is what it wrote into the file."""

    def __init__(self, path: Path, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is locked by {holder}; wait for that writer to finish")


_held: dict[tuple[int, str], int] = {}  # (thread, lock path) -> depth, for re-entrant use


@contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) while the block runs.

    Raises ``LockBusy`` at once when another process or thread holds it (``wait`` blocks
    instead). Re-entrant within one thread. The holder writes ``pid N on HOST`` into the file;
    the kernel releases the lock when the holder exits or is killed. The file is never removed
    (removing it would let two writers lock two different files).
    """
    path = Path(path)
    key = (threading.get_ident(), str(path.absolute()))
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise JaxdivError(f"{path} is a symbolic link; remove it and rerun") from None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockBusy(path, holder or "another writer") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
