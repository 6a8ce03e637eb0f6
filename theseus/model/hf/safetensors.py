"""Read and write the safetensors format without torch: a JSON header, then raw little-endian bytes.

Reading memory-maps the file, so a tensor (or a slice of one, e.g. one device's shard)
costs only the pages it touches. ``BF16`` tensors come back as ``ml_dtypes.bfloat16``
arrays, which numpy itself lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import ml_dtypes
import numpy as np

from theseus.errors import TheseusError

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
CODES = {dtype: code for code, dtype in DTYPES.items()}
MAX_HEADER = 100 << 20


class SafetensorsFile:
    """One ``.safetensors`` file, memory-mapped: names, shapes and zero-copy tensor views."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                if not 0 < size <= MAX_HEADER:
                    raise ValueError(f"header of {size} bytes")
                header = json.loads(fh.read(size))
        except (OSError, ValueError) as exc:
            raise TheseusError(f"{self.path} is not a readable safetensors file: {exc}") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._entries: dict[str, dict] = header
        self._start = 8 + size
        self._bytes = np.memmap(self.path, dtype=np.uint8, mode="r") if self._entries else None

    def names(self) -> list[str]:
        """Tensor names in the file."""
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of tensor ``name``."""
        return tuple(self._entries[name]["shape"])

    def dtype(self, name: str) -> np.dtype:
        """numpy dtype of tensor ``name``."""
        code = self._entries[name]["dtype"]
        if code not in DTYPES:
            raise TheseusError(f"{self.path}: tensor {name} has dtype {code}, which theseus cannot read")
        return DTYPES[code]

    def array(self, name: str) -> np.ndarray:
        """A read-only view of tensor ``name`` (no bytes are read until it is used)."""
        entry = self._entries[name]
        begin, end = entry["data_offsets"]
        dtype, shape = self.dtype(name), self.shape(name)
        if end - begin != dtype.itemsize * int(np.prod(shape)) or self._bytes is None:
            raise TheseusError(f"{self.path}: tensor {name} does not fill its byte range; the file is damaged")
        raw = self._bytes[self._start + begin : self._start + end]
        return raw.view(dtype).reshape(shape)


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` to ``path`` (in name order, the header padded to 8 bytes)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    offset = 0
    arrays = {name: np.ascontiguousarray(tensors[name]) for name in sorted(tensors)}
    for name, array in arrays.items():
        if array.dtype not in CODES:
            raise TheseusError(f"cannot write tensor {name} of dtype {array.dtype} to safetensors")
        header[name] = {"dtype": CODES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        for array in arrays.values():
            fh.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        fh.flush()
        os.fsync(fh.fileno())


def shard_names(sizes: Iterable[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Group tensor names (in order) into shards of at most ``max_bytes`` each (a larger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, size in sizes:
        if shards[-1] and used + size > max_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    return shards
