"""``shakespeare``: Shakespeare's plays and poems, shipped inside theseus, one document each.

``shakespeare.tar.xz`` beside this module holds 77 public-domain Project Gutenberg texts
(2.4 MB; 9.6 MB unpacked), taken unchanged from the ``shakespeare`` 0.6 package
(``scripts/pack_shakespeare.py`` rebuilds the archive): ``*_gut.txt`` in modern spelling
and ``*_gut_f.txt`` from the First Folio. The archive is read once per process, in memory.
"""

from __future__ import annotations

import functools
import io
import lzma
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from theseus.config import field
from theseus.data.datasets.base import StringDataset
from theseus.errors import TheseusError

ARCHIVE = Path(__file__).with_name("shakespeare.tar.xz")

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


@functools.cache
def _texts(archive: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(archive.read_bytes())), mode="r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            return {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    except (OSError, lzma.LZMAError, tarfile.TarError) as exc:
        raise TheseusError(
            f"the Shakespeare texts of this install are unreadable ({archive}: {exc}); reinstall theseus"
        ) from None


def texts() -> dict[str, bytes]:
    """File name -> raw bytes of every text in the shipped archive."""
    return _texts(ARCHIVE)


class Shakespeare(StringDataset):
    """Shakespeare's plays and poems (offline, shipped with theseus)."""

    CONFIG = ShakespeareConfig

    def __init__(self, config: ShakespeareConfig | None = None) -> None:
        super().__init__(config or ShakespeareConfig())
        edition = self.config.edition
        files = sorted(PurePosixPath(name) for name in texts())
        folio = [f for f in files if f.name.endswith("_gut_f.txt")]
        modern = [f for f in files if f.name.endswith("_gut.txt")]
        self.files = {"modern": modern, "folio": folio, "both": sorted(modern + folio)}[edition]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> str:
        return strip_gutenberg(texts()[str(self.files[index])].decode("utf-8"))

    def describe(self) -> str:
        """Edition and number of texts."""
        return f"shakespeare ({self.config.edition}, {len(self)} texts)"
