"""The model side of evaluation: batched, jit-compiled scoring and generation over any ``logits_fn``.

A :class:`Runner` knows how to get logits (``logits_fn(params, idx) -> logits[B, T, V]``),
where the current parameters are (``params_fn()``), the tokenizer, the batch size and the
longest sequence the model takes. Evaluations hand it :class:`~theseus.evaluation.batching.Row`\\ s
to score or prompts to continue. The scorer is one module-level ``jax.jit`` with the
logits function as a static argument, so it compiles once per (logits function, batch
shape) for the whole process, however many evaluators are built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theseus.data.tokenizer import Tokenizer
from theseus.errors import TheseusError
from theseus.evaluation.batching import Row, make_batches
from theseus.inference.generate import Generation, generate
from theseus.inference.logits import ModelLogits

__all__ = ["LogitsFn", "ModelLogits", "Runner", "Scores", "score_batch"]

LogitsFn = Callable[[Any, jax.Array], jax.Array]


@functools.partial(jax.jit, static_argnums=0)
def score_batch(
    logits_fn: LogitsFn, params: Any, idx: jax.Array, targets: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per row: the summed log-probability of the masked targets and how many are the argmax."""
    logits = logits_fn(params, idx).astype(jnp.float32)
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logprobs, targets[..., None], axis=-1)[..., 0]
    hits = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return jnp.sum(picked * mask, axis=-1), jnp.sum(hits * mask, axis=-1)


@dataclass(frozen=True)
class Scores:
    """Scores of rows, in the order they were given.

    ``logprob[i]`` is the summed log-probability of row ``i``'s scored tokens, ``correct[i]``
    how many of them were the model's argmax, ``n_scored[i]`` how many were scored.
    """

    logprob: np.ndarray
    correct: np.ndarray
    n_scored: np.ndarray

    @property
    def greedy(self) -> np.ndarray:
        """True where greedy decoding reproduces every scored token of the row."""
        return self.correct >= self.n_scored


class Runner:
    """Batched scoring and generation of one model for evaluations."""

    def __init__(
        self,
        logits_fn: LogitsFn,
        params_fn: Callable[[], Any],
        tokenizer: Tokenizer,
        *,
        batch_size: int,
        context_length: int,
        mesh: Any = None,
    ) -> None:
        if batch_size < 1:
            raise TheseusError(f"eval.batch_size must be >= 1, got {batch_size}")
        if context_length < 2:
            raise TheseusError(
                f"the evaluation context must hold at least 2 tokens (eval.context_length), got {context_length}"
            )
        self.logits_fn = logits_fn
        self.params_fn = params_fn
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.context_length = context_length
        self.mesh = mesh

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids for ``text``."""
        return list(self.tokenizer.encode(text))

    def _place(self, array: np.ndarray) -> Any:
        mesh = self.mesh
        if mesh is None or "batch" not in mesh.axis_names or array.shape[0] % mesh.shape["batch"]:
            return array
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        return jax.device_put(array, NamedSharding(mesh, P("batch")))

    def score(self, rows: Sequence[Row]) -> Scores:
        """Score ``rows`` (each truncated from the left to fit the context) in fixed-shape batches."""
        fitted = [row.fit(self.context_length) for row in rows]
        logprob = np.zeros(len(fitted), dtype=np.float64)
        correct = np.zeros(len(fitted), dtype=np.int64)
        params = self.params_fn()
        for batch in make_batches(fitted, self.batch_size, self.context_length):
            lp, hits = score_batch(
                self.logits_fn,
                params,
                self._place(batch.idx),
                self._place(batch.targets),
                self._place(batch.mask),
            )
            n = len(batch.rows)
            logprob[batch.rows] = np.asarray(lp)[:n]
            correct[batch.rows] = np.rint(np.asarray(hits)[:n]).astype(np.int64)
        n_scored = np.array([row.n_scored for row in fitted], dtype=np.int64)
        return Scores(logprob, correct, n_scored)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        stop_strings: Sequence[str] = (),
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        rng: jax.Array | None = None,
    ) -> list[Generation]:
        """Continue ``prompts`` in batches of ``batch_size`` (rows sorted by length, padding dropped)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        params = self.params_fn()
        key = rng if rng is not None else jax.random.key(0)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = [prompts[i] for i in chunk]
            batch += [batch[0]] * (self.batch_size - len(batch))
            key, batch_key = jax.random.split(key)
            outs = generate(
                self.logits_fn,
                batch,
                max_new_tokens,
                params=params,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                eos_id=self.tokenizer.eot_id,
                stop_strings=list(stop_strings),
                tokenizer=self.tokenizer,
                rng=batch_key,
                max_length=self.context_length,
            )
            for i, out in zip(chunk, outs, strict=False):
                results[i] = out
        return [r for r in results if r is not None]
