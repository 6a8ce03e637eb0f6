"""``arc_easy``: grade-school science questions, easy set (Clark et al., 2018), by log-likelihood.

Hub dataset ``allenai/ai2_arc``, config ``ARC-Easy`` (columns ``question``,
``choices: {text, label}``, ``answerKey``); the context is ``"Question: ...\\nAnswer:"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.datasets.hub import load_rows
from theseus.evaluation.kinds import Choice, MultipleChoiceEvaluation

HUB_ID = "allenai/ai2_arc"
HUB_NAME = "ARC-Easy"


@dataclass
class ArcEasyConfig:
    """Where ARC-Easy's rows come from."""

    data_files: str | None = field(
        "eval/arc_easy/data_files", default=None, doc=f"local files in the {HUB_ID} schema (None: the hub)",
        changeable=True,
    )
    split: str = field(
        "eval/arc_easy/split", default="test", doc="train, validation or test",
        changeable=True,
    )


def to_choice(row: dict[str, Any]) -> Choice:
    """One hub row as a :class:`Choice` (the answer key is looked up among the choice labels)."""
    labels = list(row["choices"]["label"])
    if row["answerKey"] not in labels:
        raise TheseusError(f"arc_easy row {row.get('id', '?')}: answer {row['answerKey']!r} not in {labels}")
    return Choice(
        f"Question: {row['question']}\nAnswer:", list(row["choices"]["text"]), labels.index(row["answerKey"])
    )


class ArcEasy(MultipleChoiceEvaluation):
    """ARC-Easy: science questions with 3-5 options (``acc``, ``acc_norm``)."""

    CONFIG = ArcEasyConfig

    def load(self) -> Sequence[Choice]:
        """The split's rows as choices."""
        cfg: ArcEasyConfig = self.config
        return [to_choice(r) for r in load_rows("arc_easy", HUB_ID, HUB_NAME, cfg.split, cfg.data_files)]
