"""Log-likelihood of a target continuation (cloze tasks such as LAMBADA's last word)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from theseus.evaluation.batching import Row
from theseus.evaluation.kinds.base import Evaluation
from theseus.evaluation.runner import Runner


@dataclass(frozen=True)
class Continuation:
    """A context and the continuation the model should give (spacing included in ``target``)."""

    context: str
    target: str


class ContinuationEvaluation(Evaluation[Continuation]):
    """How well the model predicts each example's target after its context.

    Metrics: ``acc`` (greedy decoding reproduces every target token) and ``perplexity``
    (``exp`` of minus the mean per-example log-likelihood of the target, as the
    harness reports it for LAMBADA).
    """

    def score(self, examples: Sequence[Continuation], runner: Runner) -> dict[str, float]:
        """Greedy accuracy and target perplexity of the model on ``examples``."""
        rows = []
        for i, ex in enumerate(examples):
            target = self.encode_nonempty(runner, ex.target, "the target", i)
            rows.append(Row((*self.context_ids(runner, ex.context), *target), len(target)))
        scores = runner.score(rows)
        n = len(examples)
        return {
            "acc": float(scores.greedy.sum()) / n,
            "perplexity": math.exp(-float(scores.logprob.mean())),
        }
