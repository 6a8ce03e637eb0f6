"""``alpaca``: Stanford Alpaca instructions (``tatsu-lab/alpaca``) as user/assistant chats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.data.chat import Chat
from theseus.data.datasets.base import Document
from theseus.data.datasets.hub import HubDataset, load_hf_dataset

HUB_ID = "tatsu-lab/alpaca"
COLUMNS = ["instruction", "input", "output"]


@dataclass
class AlpacaConfig:
    """Split; ``data_files`` reads local files with instruction/input/output columns instead."""

    split: str = field("data/alpaca/split", default="train", doc="split to read")
    data_files: list[str] | None = field(
        "data/alpaca/data_files", default=None, doc="local files (.jsonl/.parquet globs) instead of the hub"
    )


def alpaca_chat(instruction: str, context: str, output: str) -> Chat:
    """The user turn (instruction, then the input after a blank line if any) and the answer."""
    prompt = f"{instruction}\n\n{context}" if context.strip() else instruction
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


class Alpaca(HubDataset):
    """Alpaca: 52k instruction-following examples, one chat each."""

    CONFIG = AlpacaConfig
    kind = "chat"

    def __init__(self, config: AlpacaConfig | None = None) -> None:
        cfg = config or AlpacaConfig()
        rows = load_hf_dataset(
            HUB_ID, None, cfg.split, streaming=False, data_files=cfg.data_files, key="alpaca"
        )
        super().__init__(cfg, rows, "alpaca")

    def columns(self) -> list[str]:
        """instruction, input and output."""
        return COLUMNS

    def to_document(self, row: dict[str, Any], index: int) -> Document:
        """A two-turn chat."""
        instruction, context, output = (self._text(row, c, index) for c in COLUMNS)
        return alpaca_chat(instruction, context, output)
