"""metrics.jsonl as chart series: parsed once, kept current by byte offset, downsampled.

A run page asks for every charted metric at most ``points`` points per series. The
file is parsed once per server (a cache keyed by path, extended by the bytes appended
since, restarted when the file was replaced) and each series is downsampled by
min/max buckets, so spikes survive however long the run. Live updates read only what
was appended after the byte offset the client last saw (:func:`increment`).

Parsing a large file takes a while (about 0.3 s per 100,000 records on one CPU core),
so the server parses every run's file in the background when it starts. A request that
finds a large file not parsed yet gets an evenly spaced sample of its records at once,
marked ``partial``, and asks again for the exact series (:func:`snapshot`).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from theseus.fsio import parse_records
from theseus.web.files import NotFound, inside

#: the metrics charted when a run has them, in page order; ``eval/*`` keys follow
CHARTED = ("loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "mfu")
X_KEYS = ("step", "time")
DEFAULT_POINTS = 1200
MAX_POINTS = 20000
#: an increment larger than this is answered with ``reset`` (the client reloads, downsampled)
MAX_INCREMENT_BYTES = 4 * 1024 * 1024
#: unparsed bytes above which a request is answered with a sample while the parse goes on
PARTIAL_ABOVE = 4 * 1024 * 1024
#: bytes parsed in one call: the parser holds the GIL, so other requests run between chunks
PARSE_CHUNK = 1024 * 1024

try:  # a faster parser when the web extra brought it
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - depends on the environment

    def _loads(data: bytes) -> Any:
        return json.loads(data)


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """The JSON records of complete lines in ``data``; torn or corrupt lines are skipped."""
    body = data.strip(b"\n")
    if not body:
        return []
    try:
        records = _loads(b"[" + body.replace(b"\n", b",") + b"]")
        if all(isinstance(r, dict) for r in records):
            return records
    except ValueError:
        pass  # a torn line, or NaN/Infinity (valid for Python's json, not for the fast parser)
    return parse_records(body.split(b"\n"))


def wanted(keys: set[str]) -> list[str]:
    """The keys a chart needs: the x axes, the known metrics, then ``eval/*`` sorted."""
    return [k for k in (*X_KEYS, *CHARTED) if k in keys] + sorted(k for k in keys if k.startswith("eval/"))


def columns(records: list[dict[str, Any]], keys: list[str]) -> dict[str, np.ndarray]:
    """Float columns (NaN where a record lacks the key); keys whose values are not numbers are left out."""
    nan = math.nan
    out = {}
    for key in keys:
        values = [r.get(key, nan) for r in records]
        try:
            out[key] = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            continue
    return out


class MetricsFile:
    """The parsed columns of one metrics.jsonl, extended as the file grows."""

    def __init__(self, root: Path, path: Path) -> None:
        self.root = root
        self.path = path
        self.lock = threading.Lock()
        self.warming = False
        self._reset(None)

    def unparsed(self) -> int:
        """Bytes of the file not parsed yet (all of it when the file was replaced)."""
        try:
            st = os.stat(inside(self.root, self.path))
        except (OSError, NotFound):
            return 0
        if st.st_ino != self.inode or st.st_size < self.offset:
            return st.st_size
        return st.st_size - self.offset

    def _reset(self, inode: int | None) -> None:
        self.inode = inode
        self.offset = 0
        self.count = 0
        self.cols: dict[str, np.ndarray] = {}

    def refresh(self) -> None:
        """Parse whatever complete lines were appended since the last call."""
        try:
            real = inside(self.root, self.path)
            st = os.stat(real)
        except (OSError, NotFound):
            self._reset(None)
            return
        if st.st_ino != self.inode or st.st_size < self.offset:
            self._reset(st.st_ino)
        if st.st_size == self.offset:
            return
        with open(real, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(st.st_size - self.offset)
        end = data.rfind(b"\n") + 1
        if not end:
            return
        records: list[dict[str, Any]] = []
        start = 0
        while start < end:
            stop = data.find(b"\n", min(start + PARSE_CHUNK, end - 1)) + 1
            records.extend(parse_lines(data[start:stop]))
            start = stop
        self.offset += end
        keys = wanted(set().union(*records)) if records else []
        new = columns(records, keys)
        for key in set(self.cols) | set(new):
            old = self.cols.get(key, np.full(self.count, np.nan))
            add = new.get(key, np.full(len(records), np.nan))
            self.cols[key] = np.concatenate([old, add])
        self.count += len(records)


class MetricsCache:
    """Parsed metrics files by path, the most recently used ``size`` kept."""

    def __init__(self, root: Path, size: int = 32) -> None:
        self.root = root
        self.size = size
        self._files: OrderedDict[Path, MetricsFile] = OrderedDict()
        self._lock = threading.Lock()

    def entry(self, path: Path) -> MetricsFile:
        """The cache entry of ``path`` (created empty; not refreshed)."""
        with self._lock:
            entry = self._files.pop(path, None) or MetricsFile(self.root, path)
            self._files[path] = entry
            while len(self._files) > self.size:
                self._files.popitem(last=False)
        return entry

    def get(self, path: Path) -> MetricsFile:
        """The (refreshed) parsed file at ``path``; hold its ``lock`` while reading its columns."""
        entry = self.entry(path)
        with entry.lock:
            entry.refresh()
        return entry


def warm(cache: MetricsCache, paths: list[Path]) -> None:
    """Parse ``paths`` into ``cache`` in a background thread, in order.

    Files being parsed already, and files with nothing new to parse, are skipped (so asking
    for an up-to-date file never makes the next answer wait for a parse).
    """
    entries = [cache.entry(path) for path in paths[: cache.size]]
    entries = [e for e in entries if not e.warming and e.unparsed() > 0]
    for entry in entries:
        entry.warming = True

    def work() -> None:
        for entry in entries:
            try:
                with entry.lock:
                    entry.refresh()
            finally:
                entry.warming = False

    if entries:
        threading.Thread(target=work, name="theseus-web-warm", daemon=True).start()


def downsample(values: np.ndarray, points: int) -> np.ndarray:
    """Indices into ``values`` keeping the first, the last, and each bucket's min and max.

    At most ``points + 2`` indices, ascending; all of them when there are no more than
    ``points`` values.
    """
    n = len(values)
    if n <= points:
        return np.arange(n)
    buckets = max(1, points // 2)
    width = -(-n // buckets)
    pad = buckets * width - n
    low = np.concatenate([values, np.full(pad, np.inf)]).reshape(buckets, width).argmin(axis=1)
    high = np.concatenate([values, np.full(pad, -np.inf)]).reshape(buckets, width).argmax(axis=1)
    starts = np.arange(buckets) * width
    keep = np.unique(np.concatenate([low + starts, high + starts, [0, n - 1]]))
    return keep[keep < n]


def _as_list(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def series(cols: dict[str, np.ndarray], points: int | None) -> dict[str, dict[str, list[float | None]]]:
    """Per charted key: ``{"step": [...], "time": [...], "value": [...]}`` of its records.

    Only records that carry the key (with a finite value) take part; ``points`` bounds
    each series by :func:`downsample` (``None``: every record).
    """
    out = {}
    step = cols.get("step")
    if step is None:
        return {}
    time_col = cols.get("time")
    for key in wanted(set(cols)):
        if key in X_KEYS:
            continue
        y = cols[key]
        idx = np.flatnonzero(np.isfinite(y) & np.isfinite(step))
        if points is not None:
            idx = idx[downsample(y[idx], points)]
        out[key] = {
            "step": _as_list(step[idx]),
            "time": _as_list(time_col[idx]) if time_col is not None else [],
            "value": _as_list(y[idx]),
        }
    return out


def snapshot(cache: MetricsCache, path: Path, points: int) -> dict[str, Any]:
    """Every series of ``path`` downsampled to ``points``, with the offset to follow from.

    When more than :data:`PARTIAL_ABOVE` bytes are still to be parsed, the parse goes on in
    the background and the answer is :func:`sample` (``partial``: ask again).
    """
    entry = cache.entry(path)
    if entry.warming or entry.unparsed() > PARTIAL_ABOVE:
        warm(cache, [path])
        return sample(cache.root, path, points)
    with entry.lock:
        entry.refresh()
        return {
            "offset": entry.offset,
            "records": entry.count,
            "series": series(entry.cols, points),
            "reset": False,
            "partial": False,
        }


def sample(root: Path, path: Path, points: int) -> dict[str, Any]:
    """About ``points`` evenly spaced records of ``path`` (and the last), marked ``partial``."""
    try:
        data = inside(root, path).read_bytes()
    except (OSError, NotFound):
        data = b""
    end = data.rfind(b"\n") + 1
    starts = {0, data.rfind(b"\n", 0, end - 1) + 1} if end else set()
    for i in range(1, points):  # the line that begins after each of `points` evenly spaced bytes
        starts.add(data.find(b"\n", i * end // points) + 1)
    chosen = [data[s : data.find(b"\n", s)] for s in sorted(starts) if 0 <= s < end]
    records = parse_lines(b"\n".join(chosen))
    cols = columns(records, wanted(set().union(*records))) if records else {}
    return {"offset": 0, "records": data.count(b"\n", 0, end), "series": series(cols, None), "reset": False,
            "partial": True}


def increment(root: Path, path: Path, offset: int) -> dict[str, Any]:
    """The records appended after byte ``offset`` (every point), or ``reset`` to start over.

    ``reset`` is set when ``offset`` is not a line boundary of the current file (it was
    replaced or truncated) or too much was appended to send point by point.
    """
    try:
        real = inside(root, path)
        with open(real, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if offset > size or size - offset > MAX_INCREMENT_BYTES:
                return {"offset": 0, "records": 0, "series": {}, "reset": True}
            if offset > 0:
                fh.seek(offset - 1)
                if fh.read(1) != b"\n":
                    return {"offset": 0, "records": 0, "series": {}, "reset": True}
            data = fh.read(size - offset)
    except OSError:
        return {"offset": offset, "records": 0, "series": {}, "reset": False}
    except NotFound:
        return {"offset": 0, "records": 0, "series": {}, "reset": True}
    end = data.rfind(b"\n") + 1
    records = parse_lines(data[:end])
    cols = columns(records, wanted(set().union(*records))) if records else {}
    return {"offset": offset + end, "records": len(records), "series": series(cols, None), "reset": False}
