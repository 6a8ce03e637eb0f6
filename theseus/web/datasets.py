"""The tokenized datasets under ``OUT/data``, as the datasets page lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.data.output import PROGRESS, read_meta
from theseus.rundir import data_dir


@dataclass(frozen=True)
class DatasetSummary:
    """One dataset directory: what it holds and how it was tokenized."""

    name: str
    complete: bool
    dataset: str = "-"
    format: str = "-"
    tokenizer: str = "-"
    vocab_size: int | None = None
    train: int | None = None
    val: int | None = None
    unit: str = "tokens"
    documents: int | None = None
    created_at: float | None = None


def _split_size(meta: dict[str, Any], split: str) -> tuple[int | None, str]:
    part = meta.get(split)
    if not isinstance(part, dict):
        return None, "tokens"
    for unit in ("tokens", "rows"):
        if isinstance(part.get(unit), int):
            return int(part[unit]), unit
    return None, "tokens"


def _tokenizer(meta: dict[str, Any]) -> str:
    ident = meta.get("tokenizer")
    if not isinstance(ident, dict):
        return "-"
    backend, name = ident.get("backend"), ident.get("name") or ident.get("path")
    return f"{backend} ({name})" if name and name != backend else str(backend or "-")


def summarize_dataset(path: Path) -> DatasetSummary | None:
    """The summary of a dataset directory (``None`` when it is not one)."""
    meta = read_meta(path)
    if meta is None:
        if (path / PROGRESS).is_file():
            return DatasetSummary(name=path.name, complete=False)
        return None
    train, unit = _split_size(meta, "train")
    val, _ = _split_size(meta, "val")
    vocab = meta.get("vocab_size")
    created = meta.get("created_at")
    docs = meta.get("documents")
    return DatasetSummary(
        name=path.name,
        complete=True,
        dataset=str(meta.get("dataset", "-")),
        format=str(meta.get("format", "-")),
        tokenizer=_tokenizer(meta),
        vocab_size=vocab if isinstance(vocab, int) else None,
        train=train,
        val=val,
        unit=unit,
        documents=docs if isinstance(docs, int) else None,
        created_at=float(created) if isinstance(created, (int, float)) else None,
    )


def list_datasets(root: Path) -> list[DatasetSummary]:
    """Every dataset directory under ``root/data``, sorted by name (unfinished ones included)."""
    base = data_dir(root)
    if not base.is_dir():
        return []
    out = []
    for path in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        summary = summarize_dataset(path)
        if summary is not None:
            out.append(summary)
    return out
