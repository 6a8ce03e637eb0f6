"""metrics.jsonl as chart series: parsed once, kept current by byte offset, downsampled.

A run page asks for every charted metric at most ``points`` points per series. The
file is parsed once per server (a cache keyed by path, extended by the bytes appended
since, restarted when the file was replaced) and each series is downsampled by
min/max buckets, so spikes survive however long the run. Live updates read only what
was appended after the byte offset the client last saw (:func:`increment`).
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
        self._reset(None)

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
        records = parse_lines(data[:end])
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

    def get(self, path: Path) -> MetricsFile:
        """The (refreshed) parsed file at ``path``; hold its ``lock`` while reading its columns."""
        with self._lock:
            entry = self._files.pop(path, None) or MetricsFile(self.root, path)
            self._files[path] = entry
            while len(self._files) > self.size:
                self._files.popitem(last=False)
        with entry.lock:
            entry.refresh()
        return entry


def warm(cache: MetricsCache, paths: list[Path]) -> threading.Thread:
    """Parse ``paths`` into ``cache`` in a background thread (the newest first), so pages open fast."""

    def work() -> None:
        for path in paths[: cache.size]:
            cache.get(path)

    thread = threading.Thread(target=work, name="theseus-web-warm", daemon=True)
    thread.start()
    return thread


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
        has = np.isfinite(y)
        idx = np.flatnonzero(has)
        if points is not None:
            idx = idx[downsample(y[idx], points)]
        out[key] = {
            "step": _as_list(step[idx]),
            "time": _as_list(time_col[idx]) if time_col is not None else [],
            "value": _as_list(y[idx]),
        }
    return out


def snapshot(cache: MetricsCache, path: Path, points: int) -> dict[str, Any]:
    """Every series of ``path`` downsampled to ``points``, with the offset to follow from."""
    entry = cache.get(path)
    with entry.lock:
        return {
            "offset": entry.offset,
            "records": entry.count,
            "series": series(entry.cols, points),
            "reset": False,
        }


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
