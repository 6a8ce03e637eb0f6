"""``fineweb``: FineWeb web text (``HuggingFaceFW/fineweb``), streamed by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.data.datasets.base import Document
from theseus.data.datasets.hub import HubDataset, load_hf_dataset

HUB_ID = "HuggingFaceFW/fineweb"


@dataclass
class FineWebConfig:
    """FineWeb subset, split and streaming; ``data_files`` reads local shards instead."""

    subset: str = field(
        "data/fineweb/name", default="sample-10BT", doc="subset, e.g. sample-10BT or CC-MAIN-2024-10"
    )
    split: str = field("data/fineweb/split", default="train", doc="split to read")
    streaming: bool = field("data/fineweb/streaming", default=True, doc="stream instead of downloading")
    data_files: list[str] | None = field(
        "data/fineweb/data_files",
        default=None,
        doc="local FineWeb shards (.parquet/.jsonl globs) instead of the hub",
    )


class FineWeb(HubDataset):
    """FineWeb: cleaned Common Crawl text (column ``text``)."""

    CONFIG = FineWebConfig
    kind = "text"

    def __init__(self, config: FineWebConfig | None = None) -> None:
        cfg = config or FineWebConfig()
        rows = load_hf_dataset(
            HUB_ID, cfg.subset, cfg.split, streaming=cfg.streaming, data_files=cfg.data_files, key="fineweb"
        )
        super().__init__(cfg, rows, "fineweb")

    def columns(self) -> list[str]:
        """Only ``text``."""
        return ["text"]

    def to_document(self, row: dict[str, Any], index: int) -> Document:
        """The row's text."""
        return self._text(row, "text", index)
