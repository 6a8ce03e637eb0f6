"""``huggingface``: any dataset ``datasets.load_dataset`` can read, with a text or a chat column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.data.datasets.base import Document
from theseus.data.datasets.hub import HubDataset, load_hf_dataset
from theseus.errors import TheseusError


@dataclass
class HuggingFaceConfig:
    """Which ``datasets`` dataset to read and which column holds the documents."""

    path: str | None = field(
        "data/huggingface/path", default=None, doc="hub id or local dataset directory (load_dataset's path)"
    )
    subset: str | None = field(
        "data/huggingface/name", default=None, doc="dataset configuration (subset) name"
    )
    split: str = field("data/huggingface/split", default="train", doc="split to read")
    data_files: list[str] | None = field(
        "data/huggingface/data_files", default=None, doc="local files to read instead of path (globs)"
    )
    streaming: bool = field("data/huggingface/streaming", default=False, doc="stream instead of downloading")
    text_field: str = field("data/huggingface/text_field", default="text", doc="column holding the text")
    messages_field: str | None = field(
        "data/huggingface/messages_field", default=None, doc="column holding chats; set it to read chats"
    )


class HuggingFace(HubDataset):
    """Any Hugging Face dataset: text from ``text_field`` or chats from ``messages_field``."""

    CONFIG = HuggingFaceConfig

    def __init__(self, config: HuggingFaceConfig | None = None) -> None:
        cfg = config or HuggingFaceConfig()
        if not cfg.path and not cfg.data_files:
            raise TheseusError(
                "dataset huggingface needs data.huggingface.path or data.huggingface.data_files"
            )
        rows = load_hf_dataset(
            cfg.path or "",
            cfg.subset,
            cfg.split,
            streaming=cfg.streaming,
            data_files=cfg.data_files,
            key="huggingface",
        )
        super().__init__(cfg, rows, "huggingface")
        self.kind = "chat" if cfg.messages_field else "text"

    def columns(self) -> list[str]:
        """The one column read."""
        return [self.config.messages_field or self.config.text_field]

    def to_document(self, row: dict[str, Any], index: int) -> Document:
        """Text or chat from the configured column."""
        if self.config.messages_field:
            return self._chat(row, self.config.messages_field, index)
        return self._text(row, self.config.text_field, index)

    def describe(self) -> str:
        """Path or files."""
        return f"huggingface ({self.config.path or self.config.data_files})"
