"""Rows of a standard benchmark, from the Hugging Face hub or from local files in its schema.

Every hub-backed evaluation has ``eval/<key>/data_files`` (local json/jsonl/parquet/csv
files with the hub dataset's columns; nothing is downloaded then) and ``eval/<key>/split``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from theseus.errors import TheseusError

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


def _builder(data_files: str) -> str:
    suffixes = Path(data_files).suffixes
    for suffix in reversed(suffixes):
        if suffix in _BUILDERS:
            return _BUILDERS[suffix]
    known = ", ".join(sorted(_BUILDERS))
    raise TheseusError(f"cannot tell the format of data_files {data_files!r}; use one of {known}")


def load_rows(
    key: str, hub_id: str, hub_name: str | None, split: str, data_files: str | None = None
) -> list[dict[str, Any]]:
    """The rows of ``split``: from ``data_files`` when given, else hub dataset ``hub_id`` (config ``hub_name``).

    Raises :class:`TheseusError` naming ``eval.<key>.data_files`` when the data cannot be read.
    """
    try:
        import datasets
    except ImportError:
        raise TheseusError(
            f"evaluation {key} needs the `datasets` package: pip install 'theseus[hub]'"
        ) from None
    try:
        if data_files:
            if not any(Path(p).exists() for p in _expand(data_files)):
                raise TheseusError(f"evaluation {key}: eval.{key}.data_files={data_files!r} matches no file")
            ds = datasets.load_dataset(_builder(data_files), data_files={split: data_files}, split=split)
        else:
            ds = datasets.load_dataset(hub_id, hub_name, split=split)
    except TheseusError:
        raise
    except Exception as exc:
        where = (
            f"files {data_files!r}"
            if data_files
            else f"hub dataset {hub_id} ({hub_name or 'default'}, {split})"
        )
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TheseusError(
            f"evaluation {key}: cannot load {where}: {reason}; point eval.{key}.data_files at local files"
        ) from exc
    return [dict(row) for row in ds]


def _expand(pattern: str) -> list[str]:
    import glob

    matches = glob.glob(pattern)
    return matches or [pattern]
