"""Perplexity and next-token accuracy of documents, with a sliding window for long ones."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from theseus.evaluation.batching import Row, rolling_windows
from theseus.evaluation.kinds.base import Evaluation
from theseus.evaluation.runner import Runner, Scores


class _DocumentEvaluation(Evaluation[str]):
    """Documents scored token by token: each document is prefixed with the end-of-text token
    (so its first token is scored too) and cut into rolling windows of the context length."""

    #: targets each window after the first moves on (``None``: half the context length)
    STRIDE: ClassVar[int | None] = None

    def _stride(self, runner: Runner) -> int:
        if self.STRIDE is None:
            return max(1, runner.context_length // 2)
        return min(self.STRIDE, runner.context_length)

    def document_rows(self, documents: Sequence[str], runner: Runner) -> tuple[list[Row], list[int]]:
        """All windows of all documents, and the number of scored tokens per document."""
        rows: list[Row] = []
        counts: list[int] = []
        stride = self._stride(runner)
        for i, doc in enumerate(documents):
            ids = self.encode_nonempty(runner, doc, "document", i)
            windows = rolling_windows([runner.tokenizer.eot_id, *ids], runner.context_length, stride)
            rows.extend(windows)
            counts.append(len(ids))
        return rows, counts

    def score_documents(self, documents: Sequence[str], runner: Runner) -> tuple[Scores, int]:
        """Scores of every window and the total number of scored tokens."""
        rows, counts = self.document_rows(documents, runner)
        return runner.score(rows), sum(counts)


class PerplexityEvaluation(_DocumentEvaluation):
    """Token-weighted perplexity over documents.

    Metrics: ``perplexity`` (``exp`` of the mean negative log-likelihood per token),
    ``nll`` (that mean, in nats), ``bits_per_byte`` (total NLL in bits over the documents'
    UTF-8 bytes, comparable across tokenizers) and ``tokens`` (how many were scored).
    """

    def score(self, examples: Sequence[str], runner: Runner) -> dict[str, float]:
        """Perplexity metrics of the model on the documents ``examples``."""
        scores, tokens = self.score_documents(examples, runner)
        total_nll = -float(scores.logprob.sum())
        n_bytes = sum(len(doc.encode("utf-8")) for doc in examples)
        nll = total_nll / tokens
        return {
            "perplexity": math.exp(nll),
            "nll": nll,
            "bits_per_byte": total_nll / math.log(2) / n_bytes,
            "tokens": float(tokens),
        }


class NextTokenEvaluation(_DocumentEvaluation):
    """Next-token accuracy: how often the model's argmax is the document's next token.

    Metrics: ``accuracy`` (token-weighted over all documents) and ``tokens``.
    """

    def score(self, examples: Sequence[str], runner: Runner) -> dict[str, float]:
        """Next-token accuracy of the model on the documents ``examples``."""
        scores, tokens = self.score_documents(examples, runner)
        return {"accuracy": float(scores.correct.sum()) / tokens, "tokens": float(tokens)}
