"""Multiple choice by log-likelihood: the option the model finds most likely after the context wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from theseus.errors import TheseusError
from theseus.evaluation.batching import Row
from theseus.evaluation.kinds.base import Evaluation
from theseus.evaluation.runner import Runner


@dataclass(frozen=True)
class Choice:
    """A context, its candidate continuations and the index of the right one.

    Each option is scored as the continuation ``delimiter + option`` of ``context``, where
    ``delimiter`` is the evaluation's (a space by default).
    """

    context: str
    options: Sequence[str]
    answer: int


class MultipleChoiceEvaluation(Evaluation[Choice]):
    """Accuracy of picking the most likely option.

    Metrics: ``acc`` (highest summed log-likelihood) and ``acc_norm`` (highest
    log-likelihood divided by the option's length in characters, or in UTF-8 bytes with
    ``NORM = "bytes"``, which removes the bias toward short options).
    """

    #: text put between the context and each option
    DELIMITER: ClassVar[str] = " "
    #: length unit of ``acc_norm``
    NORM: ClassVar[Literal["chars", "bytes"]] = "chars"

    def _length(self, option: str) -> int:
        return len(option.encode("utf-8")) if self.NORM == "bytes" else len(option)

    def score(self, examples: Sequence[Choice], runner: Runner) -> dict[str, float]:
        """Raw and length-normalised accuracy of the model on ``examples``."""
        rows: list[Row] = []
        for i, ex in enumerate(examples):
            if not ex.options or not 0 <= ex.answer < len(ex.options):
                raise TheseusError(
                    f"evaluation {self.name}: example {i} has answer {ex.answer} but {len(ex.options)} options"
                )
            context = self.context_ids(runner, ex.context)
            for option in ex.options:
                ids = self.encode_nonempty(runner, self.DELIMITER + option, "an option", i)
                rows.append(Row((*context, *ids), len(ids)))
        logprob = runner.score(rows).logprob
        hits = hits_norm = 0
        offset = 0
        for ex in examples:
            lls = logprob[offset : offset + len(ex.options)]
            offset += len(ex.options)
            lengths = np.array([max(1, self._length(o)) for o in ex.options], dtype=np.float64)
            hits += int(np.argmax(lls)) == ex.answer
            hits_norm += int(np.argmax(lls / lengths)) == ex.answer
        n = len(examples)
        return {"acc": hits / n, "acc_norm": hits_norm / n}
