"""Crash-safe file writes: write a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        exc.filename = str(target)  # not the temporary name nobody asked for
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        name_the_file(exc, target)
        raise
    _fsync_dir(target.parent)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_json_even_when_full(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj``; on a full disk, overwrite the existing file in place instead.

    For a small record that must change even then (a run's final state): rewriting the
    file's own bytes needs no new block, where a temporary copy does.
    """
    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not Path(path).is_file():
            raise
        text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
        with open(path, "r+") as fh:
            fh.write(text)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())


def read_json(path: str | Path) -> Any | None:
    """Read a JSON file; ``None`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def append_line(path: str | Path, line: str) -> None:
    """Append one line and flush it to disk (a torn last line is skipped by readers)."""
    try:
        with open(path, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")
            fh.flush()
    except OSError as exc:
        name_the_file(exc, path)
        raise


def name_the_file(exc: BaseException, path: str | Path) -> None:
    """Give an :class:`OSError` raised by a write (which carries no file name) the name of ``path``."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


def parse_records(lines: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """The JSON objects among ``lines``; a torn or corrupt line is skipped."""
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn or corrupt line."""
    try:
        with open(path) as fh:
            return parse_records(fh)
    except OSError:
        return []


def last_jsonl(path: str | Path, max_bytes: int = 65536) -> dict[str, Any] | None:
    """The last complete JSON record of a JSON-lines file, reading only its tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            return rec
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
