"""Finding runs by name and reading their files, only ever inside the output root.

Every name that comes from a request (project, group, run, dataset) must be a plain
path segment; every path is resolved (symlinks followed) and must stay under the
output root. Anything else is :class:`NotFound`, so a traversal attempt looks exactly
like a missing run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from theseus.rundir import RunDirectory

#: how much of a log the run page shows at first, and the most one follow request returns
LOG_TAIL_BYTES = 64 * 1024
LOG_CHUNK_BYTES = 256 * 1024


class NotFound(Exception):
    """No such run or file inside the output root (also raised for traversal attempts)."""


def plain_segment(text: str) -> str:
    """``text`` if it is usable as one directory name under OUT, else :class:`NotFound`."""
    if (
        not text
        or text in (".", "..")
        or text.startswith(".")
        or any(c in text for c in ("/", "\\", "\x00"))
        or len(text) > 255
    ):
        raise NotFound(text)
    return text


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, if it lies under ``root`` (resolved), else :class:`NotFound`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise NotFound(str(path))
    return resolved


def find_run(root: Path, project: str, group: str, name: str) -> RunDirectory:
    """The run ``project/group/name`` under ``root``, or :class:`NotFound`."""
    parts = [plain_segment(p) for p in (project, group, name)]
    run = RunDirectory.of(root, parts[2], parts[0], parts[1])
    inside(root / "runs", run.path)
    if not (run.config_path.is_file() or run.status_path.is_file()):
        raise NotFound(str(run.path))
    return run


def parse_run_id(root: Path, run_id: str) -> RunDirectory:
    """The run named by ``project/group/name`` (as in ``?run=`` parameters)."""
    parts = run_id.split("/")
    if len(parts) != 3:
        raise NotFound(run_id)
    return find_run(root, *parts)


@dataclass(frozen=True)
class Chunk:
    """Text read from a growing file, and the byte offset to continue from."""

    text: str
    offset: int
    reset: bool = False


def read_tail(root: Path, path: Path, max_bytes: int = LOG_TAIL_BYTES) -> Chunk:
    """The last ``max_bytes`` of ``path`` from a line start (empty when missing)."""
    try:
        with open(inside(root, path), "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read(size - start)
    except (OSError, NotFound):
        return Chunk("", 0)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return Chunk(data.decode(errors="replace"), size)


def read_from(root: Path, path: Path, offset: int, max_bytes: int = LOG_CHUNK_BYTES) -> Chunk:
    """What was appended to ``path`` after byte ``offset`` (whole lines only).

    ``reset`` is set when the file is now shorter than ``offset`` (it was replaced):
    the caller starts over from :func:`read_tail`.
    """
    try:
        with open(inside(root, path), "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if offset > size:
                return Chunk("", 0, reset=True)
            fh.seek(offset)
            data = fh.read(min(size - offset, max_bytes))
    except (OSError, NotFound):
        return Chunk("", offset)
    end = data.rfind(b"\n") + 1
    return Chunk(data[:end].decode(errors="replace"), offset + end)
