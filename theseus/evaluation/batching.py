"""Rows of tokens to score, and how they become fixed-shape batches.

Every likelihood-based evaluation reduces to :class:`Row`\\ s: a token sequence whose
last ``n_scored`` tokens are scored, each given the tokens before it. Rows are grouped by
a bucketed length (a power of two, capped at the context length) and cut into batches of
exactly ``batch_size`` rows, padding with empty rows, so the jitted scorer sees only a few
distinct shapes however many examples there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from theseus.inference.generate import bucket


@dataclass(frozen=True)
class Row:
    """Score the last ``n_scored`` of ``tokens``, each predicted from the tokens before it."""

    tokens: tuple[int, ...]
    n_scored: int

    def fit(self, context_length: int) -> Row:
        """This row with its oldest tokens dropped so at most ``context_length`` tokens go in."""
        if len(self.tokens) - 1 <= context_length:
            return self
        kept = self.tokens[-(context_length + 1) :]
        return Row(kept, min(self.n_scored, context_length))


@dataclass
class Batch:
    """A padded batch: model inputs, the token each position should predict, and a score mask.

    ``rows`` are the indices (into the list given to :func:`make_batches`) of the real rows,
    which fill the batch from the top; the remaining rows are padding with a zero mask.
    """

    idx: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    rows: list[int]


def input_length(row: Row) -> int:
    """Number of model inputs the row needs (every token but the last)."""
    return len(row.tokens) - 1


def make_batches(
    rows: Sequence[Row], batch_size: int, context_length: int, pad_id: int = 0
) -> Iterator[Batch]:
    """Batches of ``batch_size`` rows, grouped by bucketed length (each row must already fit)."""
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        n = input_length(row)
        if n < 1 or row.n_scored < 1 or n > context_length:
            raise ValueError(
                f"row {i} has {n} inputs and {row.n_scored} scored tokens (context {context_length})"
            )
        by_length.setdefault(min(bucket(n), context_length), []).append(i)
    for width in sorted(by_length):
        members = by_length[width]
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            idx = np.full((batch_size, width), pad_id, dtype=np.int32)
            targets = np.zeros((batch_size, width), dtype=np.int32)
            mask = np.zeros((batch_size, width), dtype=np.float32)
            for slot, i in enumerate(chunk):
                tokens = np.asarray(rows[i].tokens, dtype=np.int32)
                n = len(tokens) - 1
                idx[slot, :n] = tokens[:-1]
                targets[slot, :n] = tokens[1:]
                mask[slot, n - rows[i].n_scored : n] = 1.0
            yield Batch(idx, targets, mask, chunk)


def rolling_windows(tokens: Sequence[int], context_length: int, stride: int) -> list[Row]:
    """Rows that score ``tokens[1:]`` once each, every token with as much left context as fits.

    The first window scores the first ``context_length`` targets; each further window moves
    ``stride`` targets on and scores only the new ones, so every token after the first
    window keeps at least ``context_length - stride`` tokens of context. The last window
    ends at the last token and always has a full context (when the text is long enough).
    """
    if stride < 1 or stride > context_length:
        raise ValueError(f"stride must be in 1..{context_length}, got {stride}")
    n_targets = len(tokens) - 1
    rows: list[Row] = []
    done = 0
    while done < n_targets:
        hi = min(n_targets, context_length if done == 0 else done + stride)
        lo = max(0, hi - context_length)
        rows.append(Row(tuple(tokens[lo : hi + 1]), hi - done))
        done = hi
    return rows
