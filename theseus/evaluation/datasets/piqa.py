"""``piqa``: physical commonsense, pick the better of two solutions (Bisk et al., 2020).

Hub dataset ``baber/piqa`` (the original PIQA rows as parquet; ``ybisk/piqa`` needs a
loading script that current ``datasets`` no longer runs): columns ``goal``, ``sol1``,
``sol2``, ``label``. The context is ``"Question: <goal>\\nAnswer:"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.datasets.hub import load_rows
from theseus.evaluation.kinds import Choice, MultipleChoiceEvaluation

HUB_ID = "baber/piqa"


@dataclass
class PiqaConfig:
    """Where PIQA's rows come from."""

    data_files: str | None = field(
        "eval/piqa/data_files", default=None, doc=f"local files in the {HUB_ID} schema (None: the hub)",
        changeable=True,
    )
    split: str = field(
        "eval/piqa/split", default="validation", doc="split to score (test has no labels)",
        changeable=True,
    )


def to_choice(row: dict[str, Any]) -> Choice:
    """One hub row as a :class:`Choice`."""
    label = int(row["label"])
    if label not in (0, 1):
        raise TheseusError(f"piqa row with goal {row['goal']!r} has label {label}; score a labelled split")
    return Choice(f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], label)


class Piqa(MultipleChoiceEvaluation):
    """PIQA: two candidate solutions per goal (``acc``, ``acc_norm``)."""

    CONFIG = PiqaConfig

    def load(self) -> Sequence[Choice]:
        """The split's rows as choices."""
        cfg: PiqaConfig = self.config
        return [to_choice(r) for r in load_rows("piqa", HUB_ID, None, cfg.split, cfg.data_files)]
