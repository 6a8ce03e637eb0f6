"""Datasets read through ``datasets.load_dataset``: the shared loading and row handling.

A hub dataset is fetched only when its key is used. Every hub-backed entry also takes
``data_files``: local files (``.jsonl``/``.json``, ``.parquet``, ``.csv``, ``.txt``) read
with the matching ``datasets`` builder instead of the hub, which is how they run offline.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from theseus.data.chat import check_messages
from theseus.data.datasets.base import Dataset, Document
from theseus.errors import TheseusError

BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}


def load_hf_dataset(
    path: str, name: str | None, split: str, *, streaming: bool, data_files: Sequence[str] | None, key: str
) -> Any:
    """``datasets.load_dataset`` with one clear :class:`TheseusError` for every failure.

    With ``data_files`` the files are read locally (all into the ``train`` split) and
    ``path``/``name`` are ignored. ``key`` is the config section named in messages.
    """
    try:
        import datasets
    except ImportError:
        raise TheseusError(f"dataset {key} needs the datasets package: pip install 'theseus[hub]'") from None
    datasets.logging.disable_progress_bar()
    if data_files:
        files = _local_files(data_files, key)
        builder = BUILDERS[files[0].suffix]
        args: tuple[Any, ...] = (builder,)
        kwargs: dict[str, Any] = {"data_files": [str(f) for f in files], "split": "train"}
        where = f"local files {data_files}"
    else:
        args = (path, name) if name else (path,)
        kwargs = {"split": split}
        where = f"{path}" + (f" ({name})" if name else "")
    try:
        return datasets.load_dataset(*args, streaming=streaming, **kwargs)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TheseusError(
            f"cannot load dataset {where}: {reason}; to read local files set data.{key}.data_files=[...]"
        ) from None


def _local_files(patterns: Sequence[str], key: str) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matched:
            raise TheseusError(f"data.{key}.data_files: {pattern} matches no file")
        files.extend(Path(m) for m in matched if Path(m).is_file())
    suffixes = {f.suffix for f in files}
    if not files or len(suffixes) != 1 or next(iter(suffixes)) not in BUILDERS:
        raise TheseusError(
            f"data.{key}.data_files must be files of one type among {', '.join(BUILDERS)} (got {sorted(suffixes)})"
        )
    return files


class HubDataset(Dataset):
    """Rows of a ``datasets`` dataset turned into documents by :meth:`to_document`."""

    def __init__(self, config: Any, rows: Any, key: str) -> None:
        super().__init__(config)
        self.rows = rows
        self.key = key

    def to_document(self, row: dict[str, Any], index: int) -> Document:
        """The document of one row (override for other layouts)."""
        raise NotImplementedError

    def columns(self) -> list[str] | None:
        """The columns :meth:`to_document` reads (others are not decoded), or ``None`` for all."""
        return None

    def __iter__(self) -> Iterator[Document]:
        return self.iter_from(0)

    def size_hint(self) -> int | None:
        """The number of rows of a map-style dataset; ``None`` when streaming."""
        rows = getattr(self.rows, "num_rows", None)
        return int(rows) if isinstance(rows, int) else None

    def iter_from(self, start: int) -> Iterator[Document]:
        """Rows from ``start`` on, as documents."""
        rows = self.rows
        wanted = self.columns()
        names = getattr(rows, "column_names", None)
        if wanted is not None and names is not None:
            missing = [c for c in wanted if c not in names]
            if missing:
                raise TheseusError(
                    f"dataset {self.key} has no column {missing[0]!r} (columns: {', '.join(names)})"
                )
            rows = rows.select_columns(wanted)
        if start:
            rows = rows.skip(start)
        for index, row in enumerate(rows, start=start):
            yield self.to_document(row, index)

    def _text(self, row: dict[str, Any], column: str, index: int) -> str:
        value = row.get(column)
        if not isinstance(value, str):
            raise TheseusError(f"dataset {self.key} row {index}: column {column!r} is not text")
        return value

    def _chat(self, row: dict[str, Any], column: str, index: int) -> Document:
        try:
            return check_messages(row.get(column))
        except TheseusError as exc:
            raise TheseusError(f"dataset {self.key} row {index}: {exc}") from None
