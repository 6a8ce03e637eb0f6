"""Datasets: the document sources the tokenization jobs read (see :mod:`.base` and :mod:`.registry`)."""

import dataclasses
from typing import Any

from theseus.data.datasets.base import (
    ChatDataset,
    Dataset,
    Document,
    MapDataset,
    StreamingChatDataset,
    StreamingStringDataset,
    StringDataset,
)

__all__ = [
    "ChatDataset",
    "Dataset",
    "Document",
    "MapDataset",
    "StreamingChatDataset",
    "StreamingStringDataset",
    "StringDataset",
    "dataset_config_classes",
    "dataset_options",
    "open_dataset",
]


def open_dataset(key: str) -> Dataset:
    """Build registered dataset ``key`` with its options from the active config."""
    from theseus.config import configure
    from theseus.registry import DATASETS

    cls = DATASETS[key]
    config_cls = getattr(cls, "CONFIG", None)
    return cls(configure(config_cls)) if config_cls is not None else cls()


def dataset_options(dataset: Dataset) -> dict[str, Any] | None:
    """A dataset's options as a plain dict (``None`` when it has no config dataclass)."""
    config = dataset.config
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return None


def dataset_config_classes() -> list[type]:
    """The config classes of every registered dataset (their keys go into a job's YAML)."""
    from theseus.registry import DATASETS

    classes: list[type] = []
    for _, cls in DATASETS.items():
        config_cls = getattr(cls, "CONFIG", None)
        if config_cls is not None and config_cls not in classes:
            classes.append(config_cls)
    return classes
