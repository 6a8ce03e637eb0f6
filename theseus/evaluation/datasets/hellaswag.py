"""``hellaswag``: pick the ending of an everyday scene (Zellers et al., 2019), by log-likelihood.

Hub dataset ``Rowan/hellaswag`` (columns ``activity_label``, ``ctx_a``, ``ctx_b``,
``endings``, ``label``); the context is ``"<activity>: <ctx_a> <Ctx_b>"`` with the
WikiHow markup removed, and the four endings are the options.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.datasets.hub import load_rows
from theseus.evaluation.kinds import Choice, MultipleChoiceEvaluation

HUB_ID = "Rowan/hellaswag"
_BRACKETED = re.compile(r"\[[^\]]*\]")


@dataclass
class HellaSwagConfig:
    """Where HellaSwag's rows come from."""

    data_files: str | None = field(
        "eval/hellaswag/data_files", default=None, doc=f"local files in the {HUB_ID} schema (None: the hub)",
        changeable=True,
    )
    split: str = field(
        "eval/hellaswag/split", default="validation", doc="split to score (test has no labels)",
        changeable=True,
    )


def clean(text: str) -> str:
    """Remove WikiHow artefacts: ``[title]`` markers become sentence breaks, other ``[tags]`` go."""
    text = text.strip().replace(" [title]", ". ")
    text = _BRACKETED.sub("", text)
    return text.replace("  ", " ").strip()


def to_choice(row: dict[str, Any]) -> Choice:
    """One hub row as a :class:`Choice`."""
    context = f"{row['activity_label']}: {row['ctx_a']} {str(row['ctx_b']).capitalize()}"
    label = str(row["label"]).strip()
    if not label.isdigit():
        raise TheseusError(f"hellaswag row {row.get('ind', '?')} has no label; score a labelled split")
    return Choice(clean(context), [clean(e) for e in row["endings"]], int(label))


class HellaSwag(MultipleChoiceEvaluation):
    """HellaSwag: commonsense sentence completion, 4 options (``acc``, ``acc_norm``)."""

    CONFIG = HellaSwagConfig

    def load(self) -> Sequence[Choice]:
        """The split's rows as choices."""
        cfg: HellaSwagConfig = self.config
        return [to_choice(r) for r in load_rows("hellaswag", HUB_ID, None, cfg.split, cfg.data_files)]
