"""What a dataset is: documents (text or chats), map-style or streaming.

A dataset class has an optional ``CONFIG`` dataclass whose fields use
:func:`theseus.config.field` (keys under ``data/<dataset key>/...``); the tokenization
jobs configure it and pass the instance to the constructor. A dataset yields either
strings (``kind == "text"``) or chats (``kind == "chat"``: lists of
``{"role", "content"}``).

- :class:`StringDataset` / :class:`ChatDataset`: map-style (``len`` and ``[i]``);
- :class:`StreamingStringDataset` / :class:`StreamingChatDataset`: iterable only.

Register a dataset with one line in ``theseus/data/datasets/registry.py`` (or in your own
module loaded with ``--load``): ``DATASETS["my_data"] = MyDataset``.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from theseus.data.chat import Chat

Document = str | Chat
Kind = Literal["text", "chat"]


class Dataset(ABC):
    """A source of documents; iterate it, or resume from a position with :meth:`iter_from`."""

    CONFIG: ClassVar[type[Any] | None] = None
    kind: Kind = "text"

    def __init__(self, config: Any = None) -> None:
        self.config = config

    @abstractmethod
    def __iter__(self) -> Iterator[Document]:
        """Every document, in a fixed order."""

    def iter_from(self, start: int) -> Iterator[Document]:
        """Documents from position ``start`` on (the first ``start`` are skipped)."""
        return itertools.islice(iter(self), start, None)

    def size_hint(self) -> int | None:
        """Number of documents when known without reading them all, else ``None``."""
        return None

    def describe(self) -> str:
        """A short description for logs."""
        return type(self).__name__


class MapDataset(Dataset):
    """A dataset with a length and random access."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents."""

    @abstractmethod
    def __getitem__(self, index: int) -> Document:
        """Document ``index``."""

    def __iter__(self) -> Iterator[Document]:
        return self.iter_from(0)

    def size_hint(self) -> int | None:
        """The length."""
        return len(self)

    def iter_from(self, start: int) -> Iterator[Document]:
        """Documents ``start``, ``start + 1``, ... without touching the ones before."""
        return (self[i] for i in range(start, len(self)))


class StringDataset(MapDataset):
    """Map-style dataset of text documents."""

    kind: Kind = "text"


class ChatDataset(MapDataset):
    """Map-style dataset of chats."""

    kind: Kind = "chat"


class StreamingStringDataset(Dataset):
    """Streaming dataset of text documents."""

    kind: Kind = "text"


class StreamingChatDataset(Dataset):
    """Streaming dataset of chats."""

    kind: Kind = "chat"
