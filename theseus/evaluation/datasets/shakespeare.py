"""``shakespeare_ppl`` and ``shakespeare_next_token``: held-out Shakespeare, offline.

The documents are the texts the ``shakespeare`` dataset puts in validation (the
tokenization jobs' rule: a hash of each text with ``split_seed`` below ``val_fraction``;
with the defaults, *Henry VIII* in the modern edition), cut at line breaks into pieces of
about ``eval.shakespeare.chars`` characters so that ``eval.max_examples`` takes a prefix.
Keep ``eval.shakespeare.{edition,val_fraction,split_seed}`` equal to the ``data.*``
settings the training data was tokenized with, or the texts are not held out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.kinds import NextTokenEvaluation, PerplexityEvaluation


@dataclass
class ShakespeareEvalConfig:
    """Which Shakespeare texts are held out, and how they are cut into documents."""

    edition: Literal["modern", "folio", "both"] = field(
        "eval/shakespeare/edition", default="modern", doc="as data.shakespeare.edition of the training data",
        changeable=True,
    )
    val_fraction: float = field(
        "eval/shakespeare/val_fraction",
        default=0.05,
        doc="as data.val_fraction of the training data",
        ge=0,
        le=1,
        changeable=True,
    )
    split_seed: int = field(
        "eval/shakespeare/split_seed", default=0, doc="as data.split_seed of the training data",
        changeable=True,
    )
    chars: int = field(
        "eval/shakespeare/chars", default=2000, doc="characters per document (cut at line breaks)", ge=1,
        changeable=True,
    )


def pieces(text: str, chars: int) -> list[str]:
    """``text`` cut at line breaks into pieces of at least ``chars`` characters (the last may be shorter)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line)
        if size >= chars:
            out.append("".join(current))
            current, size = [], 0
    if current and "".join(current).strip():
        out.append("".join(current))
    return out


def held_out_documents(cfg: ShakespeareEvalConfig) -> list[str]:
    """The held-out texts of ``cfg``, in file order, cut into documents."""
    from theseus.data.datasets.shakespeare import Shakespeare, ShakespeareConfig
    from theseus.data.encoding import is_validation

    if cfg.chars < 1:
        raise TheseusError(f"eval.shakespeare.chars must be >= 1, got {cfg.chars}")
    dataset = Shakespeare(ShakespeareConfig(edition=cfg.edition))
    texts = [
        t
        for t in (dataset[i] for i in range(len(dataset)))
        if is_validation(t, cfg.split_seed, cfg.val_fraction)
    ]
    if not texts:
        raise TheseusError(
            f"no {cfg.edition} Shakespeare text is held out with val_fraction={cfg.val_fraction} and "
            f"split_seed={cfg.split_seed}; raise eval.shakespeare.val_fraction"
        )
    return [piece for text in texts for piece in pieces(text, cfg.chars)]


class ShakespearePerplexity(PerplexityEvaluation):
    """Perplexity on held-out Shakespeare (offline)."""

    CONFIG = ShakespeareEvalConfig

    def load(self) -> Sequence[str]:
        """The held-out documents."""
        return held_out_documents(self.config)


class ShakespeareNextToken(NextTokenEvaluation):
    """Next-token accuracy on held-out Shakespeare (offline)."""

    CONFIG = ShakespeareEvalConfig

    def load(self) -> Sequence[str]:
        """The held-out documents."""
        return held_out_documents(self.config)
