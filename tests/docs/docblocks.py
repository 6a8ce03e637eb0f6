"""The runnable code blocks of the documentation pages, and the markers that steer them.

Every fenced block labelled ``bash``/``sh``/``shell`` or ``python``/``py`` in ``docs/`` is
run, in page order, in a fresh directory per page. HTML comments (invisible on the site)
adjust this:

- ``<!-- docs-test: skip (reason) -->`` directly above a block: not run (a reason is required);
- ``<!-- docs-test: file PATH -->`` directly above a block: the block is appended to PATH
  (relative to the page's directory) instead of being run; later blocks import or load it;
- ``<!-- docs-test: replace OLD => NEW -->`` anywhere: every later block of the page has OLD
  replaced by NEW before it runs (tiny settings for the test: fewer steps, a smaller model);
- ``<!-- docs-test: setup COMMANDS -->`` anywhere: bash run once before the page's first
  block (``$THESEUS_DOCS_DEMO`` is an output root holding tokenized Shakespeare and a
  trained tiny GPT run named ``shakespeare-gpt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUNNERS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<verb>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$", re.S)


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None
    file: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)

    @property
    def runner(self) -> str | None:
        """``bash``, ``python``, or ``None`` for blocks that are not run (YAML, plain text)."""
        return RUNNERS.get(self.lang)

    def text(self) -> str:
        """The code with the page's replacements applied."""
        out = self.code
        for old, new in self.replacements:
            out = out.replace(old, new)
        return out


@dataclass
class Page:
    """A documentation page: its blocks and its setup commands."""

    path: Path
    blocks: list[Block]
    setup: list[str]

    @property
    def runnable(self) -> list[Block]:
        """Blocks that are run or written to a file."""
        return [b for b in self.blocks if b.runner and not b.skip]


class MarkerError(ValueError):
    """A malformed docs-test marker."""


def parse(path: Path) -> Page:
    """Split a Markdown page into code blocks with their markers."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    setup: list[str] = []
    replacements: list[tuple[str, str]] = []
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--") and "docs-test:" in line:
            end = i
            while "-->" not in lines[end]:
                end += 1
            text = "\n".join(lines[i : end + 1])
            match = DIRECTIVE.match(text)
            if not match:
                raise MarkerError(f"{path}:{i + 1}: malformed docs-test marker")
            verb, arg = match["verb"], match["arg"]
            if verb == "skip":
                if not re.fullmatch(r"\(.+\)", arg):
                    raise MarkerError(f"{path}:{i + 1}: docs-test: skip needs a (reason)")
                pending["skip"] = arg[1:-1]
            elif verb == "file":
                pending["file"] = arg
            elif verb == "replace":
                old, sep, new = arg.partition(" => ")
                if not sep or not old:
                    raise MarkerError(f"{path}:{i + 1}: docs-test: replace needs OLD => NEW")
                replacements.append((old, new))
            elif verb == "setup":
                setup.append(arg)
            else:
                raise MarkerError(f"{path}:{i + 1}: unknown docs-test marker {verb!r}")
            i = end + 1
            continue
        fence = FENCE.match(line)
        if fence:
            ticks, indent = fence["ticks"], len(fence["indent"])
            body = []
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(ticks):
                raw = lines[j]
                body.append(raw[indent:] if raw[:indent].strip() == "" else raw.lstrip())
                j += 1
            blocks.append(Block(path, i + 1, fence["lang"].lower(), "\n".join(body) + "\n",
                                skip=pending.get("skip"), file=pending.get("file"),
                                replacements=list(replacements)))
            pending = {}
            i = j + 1
            continue
        if line.strip():
            pending = {}
        i += 1
    return Page(path, blocks, setup)
