"""``lambada``: predict the last word of a passage (Paperno et al., 2016; OpenAI's version).

Hub dataset ``EleutherAI/lambada_openai``, config ``default``, split ``test`` (column
``text``). The context is the passage without its last word; the target is a space and
that word. ``acc`` counts passages whose last word greedy decoding reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.datasets.hub import load_rows
from theseus.evaluation.kinds import Continuation, ContinuationEvaluation

HUB_ID = "EleutherAI/lambada_openai"
HUB_NAME = "default"


@dataclass
class LambadaConfig:
    """Where LAMBADA's rows come from."""

    data_files: str | None = field(
        "eval/lambada/data_files", default=None, doc=f"local files in the {HUB_ID} schema (None: the hub)",
        changeable=True,
    )
    split: str = field(
        "eval/lambada/split", default="test", doc="the only split of lambada_openai is test",
        changeable=True,
    )


def to_continuation(text: str) -> Continuation:
    """A passage split into everything before its last word and ``" " + last word``."""
    head, sep, last = text.rstrip().rpartition(" ")
    if not sep or not last:
        raise TheseusError(f"lambada passage {text[:40]!r} has no last word to predict")
    return Continuation(head, " " + last)


class Lambada(ContinuationEvaluation):
    """LAMBADA (OpenAI): last-word prediction (``acc``, ``perplexity``)."""

    CONFIG = LambadaConfig

    def load(self) -> Sequence[Continuation]:
        """The split's passages as continuations."""
        cfg: LambadaConfig = self.config
        return [
            to_continuation(r["text"])
            for r in load_rows("lambada", HUB_ID, HUB_NAME, cfg.split, cfg.data_files)
        ]
