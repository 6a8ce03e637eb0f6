"""Text from a trained run: what ``theseus generate`` does.

:func:`generate_from_run` reads a run through :class:`~theseus.trained_run.TrainedRun` (its
model, a checkpoint's parameters and its tokenizer) and continues each prompt. A model that
implements the decoding hook :meth:`~theseus.model.module.Module.decoder` generates with
the KV cache (:func:`~theseus.inference.kv_cache.generate_cached`); any other model is
still sampled, by full recomputation at every step
(:func:`~theseus.inference.generate.generate`): exact, only slower, so a model that
implements just the three members of the :class:`~theseus.model.module.Module` contract
can generate too.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import jax

from theseus.inference.generate import Generation, generate
from theseus.inference.kv_cache import generate_cached
from theseus.inference.logits import ModelLogits, context_length
from theseus.model.module import Module
from theseus.trained_run import TrainedRun

log = logging.getLogger("theseus")


@dataclass(frozen=True)
class RunGeneration:
    """What :func:`generate_from_run` produced: one :class:`Generation` per prompt, and how."""

    outputs: list[Generation]
    step: int
    seconds: float
    cached: bool

    @property
    def tokens(self) -> int:
        """How many tokens were generated in all."""
        return sum(len(o.tokens) for o in self.outputs)


def generate_from_run(
    run: TrainedRun,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    *,
    step: int | None = None,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    stop_strings: Sequence[str] = (),
) -> RunGeneration:
    """Continue each of ``prompts`` with checkpoint ``step`` (default: the newest intact one) of ``run``.

    Sampling is as in :func:`~theseus.inference.kv_cache.generate_cached` (``temperature=0``
    is greedy; ``seed`` makes a sample reproducible). Warnings (a prompt cut to fit the
    context) are logged. Raises :class:`~theseus.errors.TheseusError` for a missing or
    damaged checkpoint, an empty prompt or bad settings.
    """
    loaded = run.load(step)
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = [tokenizer.encode(prompt) for prompt in prompts]
    cached = isinstance(model, Module) and model.can_decode()
    if not cached:
        log.info(
            "%s does not implement Module.decoder(): generating by full recomputation (exact, slower)",
            type(model).__name__,
        )
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cached:
            outputs = generate_cached(
                model, loaded.params, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                eos_id=tokenizer.eot_id, stop_strings=stop_strings, tokenizer=tokenizer, rng=jax.random.key(seed),
            )
        else:
            outputs = generate(
                ModelLogits(model), ids, max_new_tokens, params=loaded.params, max_length=context_length(model),
                temperature=temperature, top_k=top_k, top_p=top_p, eos_id=tokenizer.eot_id,
                stop_strings=stop_strings, tokenizer=tokenizer, rng=jax.random.key(seed),
            )
    for warning in caught:
        log.warning("warning: %s", warning.message)
    return RunGeneration(outputs, loaded.step, time.perf_counter() - started, cached)


__all__ = ["RunGeneration", "generate_from_run"]
