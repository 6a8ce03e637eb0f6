"""``tinystories``: short children's stories (``roneneldan/TinyStories``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.data.datasets.base import Document
from theseus.data.datasets.hub import HubDataset, load_hf_dataset

HUB_ID = "roneneldan/TinyStories"


@dataclass
class TinyStoriesConfig:
    """Split and streaming; ``data_files`` reads local files instead."""

    split: str = field("data/tinystories/split", default="train", doc="train or validation")
    streaming: bool = field("data/tinystories/streaming", default=False, doc="stream instead of downloading")
    data_files: list[str] | None = field(
        "data/tinystories/data_files",
        default=None,
        doc="local files (.jsonl/.parquet/.txt globs) instead of the hub",
    )


class TinyStories(HubDataset):
    """TinyStories: one story per document (column ``text``)."""

    CONFIG = TinyStoriesConfig
    kind = "text"

    def __init__(self, config: TinyStoriesConfig | None = None) -> None:
        cfg = config or TinyStoriesConfig()
        rows = load_hf_dataset(
            HUB_ID, None, cfg.split, streaming=cfg.streaming, data_files=cfg.data_files, key="tinystories"
        )
        super().__init__(cfg, rows, "tinystories")

    def columns(self) -> list[str]:
        """Only ``text``."""
        return ["text"]

    def to_document(self, row: dict[str, Any], index: int) -> Document:
        """The story."""
        return self._text(row, "text", index)
