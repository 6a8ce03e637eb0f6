"""``text_files``: local ``.txt``, ``.jsonl`` and ``.parquet`` files chosen by glob.

``.txt`` files are one document each, or split into documents on lines, blank-line
runs or a separator string (read in blocks, so a large file never sits in memory).
``.jsonl`` and ``.parquet`` rows give one document each from a text field, or a chat
from a messages field.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from theseus.config import field
from theseus.data.chat import check_messages
from theseus.data.datasets.base import Dataset, Document
from theseus.errors import TheseusError

SUFFIXES = (".txt", ".jsonl", ".parquet")
BLOCK_CHARS = 1 << 20


@dataclass
class TextFilesConfig:
    """Which files to read and how to cut them into documents."""

    paths: list[str] = field(
        "data/text_files/paths", default=[], doc="globs of .txt/.jsonl/.parquet files (~ expanded)"
    )
    text_field: str = field(
        "data/text_files/field", default="text", doc="text column of .jsonl/.parquet rows"
    )
    messages_field: str | None = field(
        "data/text_files/messages_field",
        default=None,
        doc="column holding chats (lists of {role, content}); set it to read chats instead of text",
    )
    split_on: Literal["file", "line", "blank_lines", "separator"] = field(
        "data/text_files/split_on",
        default="file",
        doc=".txt documents: the whole file, each line, each blank-line-separated block, or between separators",
    )
    separator: str = field(
        "data/text_files/separator", default="<|endoftext|>", doc="the separator for split_on=separator"
    )


class TextFiles(Dataset):
    """Documents from local text, JSON-lines or Parquet files."""

    CONFIG = TextFilesConfig

    def __init__(self, config: TextFilesConfig | None = None) -> None:
        super().__init__(config or TextFilesConfig())
        cfg: TextFilesConfig = self.config
        self.kind = "chat" if cfg.messages_field else "text"
        self.files = _expand(cfg.paths)
        if cfg.messages_field and any(f.suffix == ".txt" for f in self.files):
            raise TheseusError("data.text_files.messages_field is set, but .txt files hold no chats")

    def describe(self) -> str:
        """How many files."""
        return f"text_files ({len(self.files)} files)"

    def __iter__(self) -> Iterator[Document]:
        for file in self.files:
            if file.suffix == ".txt":
                yield from self._split_text(file)
            elif file.suffix == ".jsonl":
                yield from self._jsonl(file)
            else:
                yield from self._parquet(file)

    def _split_text(self, file: Path) -> Iterator[str]:
        mode = self.config.split_on
        with file.open(encoding="utf-8") as fh:
            if mode == "file":
                text = fh.read()
                if text.strip():
                    yield text
            elif mode == "line":
                for line in fh:
                    if line.strip():
                        yield line.rstrip("\n")
            elif mode == "blank_lines":
                yield from _paragraphs(fh)
            else:
                yield from _separated(fh, self.config.separator)

    def _value(self, row: Any, where: str) -> Document:
        cfg: TextFilesConfig = self.config
        key = cfg.messages_field or cfg.text_field
        if not isinstance(row, dict) or key not in row:
            raise TheseusError(f"{where} has no field {key!r} (set data.text_files.field)")
        value = row[key]
        if cfg.messages_field:
            try:
                return check_messages(value)
            except TheseusError as exc:
                raise TheseusError(f"{where}: {exc}") from None
        if not isinstance(value, str):
            raise TheseusError(f"{where}: field {key!r} is {type(value).__name__}, not text")
        return value

    def _jsonl(self, file: Path) -> Iterator[Document]:
        with file.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise TheseusError(f"{file}:{number} is not valid JSON") from None
                yield self._value(row, f"{file}:{number}")

    def _parquet(self, file: Path) -> Iterator[Document]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TheseusError("reading .parquet files needs pyarrow: pip install pyarrow") from None
        cfg: TextFilesConfig = self.config
        key = cfg.messages_field or cfg.text_field
        parquet = pq.ParquetFile(file)
        if key not in parquet.schema_arrow.names:
            raise TheseusError(
                f"{file} has no column {key!r} (columns: {', '.join(parquet.schema_arrow.names)})"
            )
        row_number = 0
        for batch in parquet.iter_batches(columns=[key], batch_size=1024):
            for row in batch.to_pylist():
                row_number += 1
                yield self._value(row, f"{file} row {row_number}")


def _expand(patterns: list[str]) -> list[Path]:
    if not patterns:
        raise TheseusError(
            "dataset text_files needs data.text_files.paths (globs of .txt/.jsonl/.parquet files)"
        )
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        if not matched:
            raise TheseusError(f"data.text_files.paths: {pattern} matches no file")
        for name in matched:
            path = Path(name)
            if path.is_dir():
                continue
            if path.suffix not in SUFFIXES:
                raise TheseusError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)})")
            if path not in files:
                files.append(path)
    if not files:
        raise TheseusError(f"data.text_files.paths {patterns} match only directories")
    return files


def _paragraphs(lines: Iterator[str]) -> Iterator[str]:
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line)
        elif block:
            yield "".join(block).rstrip("\n")
            block = []
    if block:
        yield "".join(block).rstrip("\n")


def _separated(fh: Any, separator: str) -> Iterator[str]:
    if not separator:
        raise TheseusError("data.text_files.separator must not be empty")
    buffer = ""
    while block := fh.read(BLOCK_CHARS):
        buffer += block
        *done, buffer = buffer.split(separator)
        for piece in done:
            if piece.strip():
                yield piece.strip("\n")
    if buffer.strip():
        yield buffer.strip("\n")
