"""A tokenized dataset directory being written, so that a kill at any moment loses nothing.

The ``.bin`` files only grow. After each chunk they are flushed and fsynced, then
``progress.json`` (their committed lengths and the counters) is replaced atomically. A
restarted job truncates the files back to the committed lengths and carries on after
the committed documents. ``meta.json`` is written last, atomically: a directory with
``meta.json`` is complete, one without it is not (readers refuse it). It records the
size and SHA-256 of every file and one ``content_sha256`` over them: the data's identity,
which a run copies when it starts and checks when it resumes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from theseus.errors import TheseusError
from theseus.fsio import atomic_write_json, name_the_file, read_json

META = "meta.json"
PROGRESS = "progress.json"


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (a lock file beside it) or raise :class:`TheseusError`."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.parent / f".{directory.name}.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TheseusError(f"another process is writing {directory}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_identity(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two nested dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [prefix.rstrip(".")] if old != new else []


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The ``meta.json`` of a finished dataset directory, or ``None``."""
    meta = read_json(directory / META)
    return meta if isinstance(meta, dict) else None


class TokenizedOutput:
    """Append-only binary files plus an atomically committed progress record."""

    def __init__(self, directory: Path, files: Sequence[str], fingerprint: str) -> None:
        self.directory = directory
        self.files = list(files)
        self.fingerprint = fingerprint
        self._handles: dict[str, IO[bytes]] = {}
        self._created = False

    def start(self) -> dict[str, Any]:
        """Open the files at their committed lengths; return the committed counters ({} when new)."""
        self._created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        progress = read_json(self.directory / PROGRESS)
        if not isinstance(progress, dict):
            sizes = dict.fromkeys(self.files, 0)
            counters: dict[str, Any] = {}
        elif progress.get("fingerprint") != self.fingerprint:
            raise TheseusError(
                f"{self.directory} holds an unfinished tokenization with another config; "
                "set data.suffix=... to write elsewhere, or delete the directory"
            )
        else:
            sizes = {name: int(progress["bytes"][name]) for name in self.files}
            counters = dict(progress["counters"])
        for name in self.files:
            path = self.directory / name
            path.touch()
            if path.stat().st_size < sizes[name]:
                raise TheseusError(
                    f"{path} is shorter than its committed length; delete {self.directory} and rerun"
                )
            handle = open(path, "r+b")  # noqa: SIM115 - kept open across chunks, closed in close()
            handle.truncate(sizes[name])
            handle.seek(sizes[name])
            self._handles[name] = handle
        return counters

    def append(self, name: str, array: np.ndarray) -> None:
        """Write ``array``'s bytes at the end of file ``name``."""
        try:
            self._handles[name].write(np.ascontiguousarray(array).tobytes())
        except OSError as exc:
            name_the_file(exc, self.directory / name)
            raise

    def commit(self, counters: dict[str, Any]) -> None:
        """Make everything appended so far durable, then record it with ``counters``."""
        sizes = self._sync()
        atomic_write_json(
            self.directory / PROGRESS, {"fingerprint": self.fingerprint, "bytes": sizes, "counters": counters}
        )

    def _sync(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name, handle in self._handles.items():
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                name_the_file(exc, self.directory / name)
                raise
            sizes[name] = handle.tell()
        return sizes

    def finish(self, meta: dict[str, Any]) -> None:
        """Sync the files, write ``meta.json`` with their checksums (atomically, last), drop the progress file."""
        self._sync()
        self.close()
        files = {name: _file_identity(self.directory / name) for name in self.files}
        content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        atomic_write_json(self.directory / META, {**meta, "files": files, "content_sha256": content})
        (self.directory / PROGRESS).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the files (committed data stays)."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def discard(self) -> None:
        """Remove what this output wrote (used when there turned out to be nothing to write)."""
        self.close()
        for name in [*self.files, PROGRESS]:
            (self.directory / name).unlink(missing_ok=True)
        if self._created and not any(self.directory.iterdir()):
            self.directory.rmdir()
