"""Evaluate theseus models with EleutherAI's lm-evaluation-harness (``pip install lm-eval``).

::

    import lm_eval
    from theseus.evaluation.lm_eval_adapter import TheseusLM

    lm = TheseusLM.from_run("OUT/runs/default/default/my-run")      # newest checkpoint
    results = lm_eval.simple_evaluate(model=lm, tasks=["hellaswag"])

or from the harness's own command line, run through ``theseus lm-eval`` (which registers the
model first; lm-eval 0.4 finds models only in its own registry, never in other packages)::

    theseus lm-eval --model theseus --model_args run=my-run,out=OUT,step=1000 --tasks hellaswag

``run`` is a run directory, or a run name with ``out`` (and ``project``/``group`` when not
``default``); ``step`` defaults to the newest checkpoint.

Requests become the same fixed-shape, jit-compiled batches theseus's own evaluations
use (:class:`~theseus.evaluation.runner.Runner`): ``loglikelihood`` scores the
continuation's tokens after the context's, ``loglikelihood_rolling`` scores a whole
text in disjoint windows of the context length (each token once; an end-of-text token
is the first token's context), and ``generate_until`` decodes greedily (or samples when
asked) with the reference generator, stopping at the ``until`` strings or end-of-text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from theseus.errors import TheseusError

try:
    import lm_eval.models  # noqa: F401 - registers the harness's own models before ours
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as exc:  # pragma: no cover - exercised only without the optional package
    raise TheseusError("the lm-eval adapter needs lm-evaluation-harness: pip install 'theseus[lm-eval]'") from exc

from theseus.data.tokenizer import Tokenizer
from theseus.evaluation.batching import Row, rolling_windows
from theseus.evaluation.evaluator import Evaluator
from theseus.evaluation.runner import LogitsFn, Runner
from theseus.trained_run import TrainedRun


def _whole_number(name: str, value: int | str) -> int:
    """``value`` as an int, or a one-line :class:`TheseusError` naming the model argument."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TheseusError(f"model_args {name}={value!r} must be a whole number") from None


def harness_main(args: Sequence[str]) -> int:
    """Run lm-evaluation-harness's own command line on ``args`` with the ``theseus`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm_eval", *args]
    try:
        cli_evaluate()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


@register_model("theseus")
class TheseusLM(LM):
    """lm-eval's model API (``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``) over a theseus model.

    Build it from an :class:`~theseus.evaluation.Evaluator` (which holds the model,
    parameters and tokenizer), with :meth:`from_pieces`, with :meth:`from_run`, or from
    the harness's ``--model_args run=...,out=...,step=...`` (``run_dir=`` also names a
    run directory).
    """

    def __init__(
        self,
        evaluator: Evaluator[Any] | None = None,
        *,
        run: str | None = None,
        out: str | None = None,
        project: str = "default",
        group: str = "default",
        run_dir: str | None = None,
        step: int | str | None = None,
        batch_size: int | str | None = None,
        max_gen_toks: int | str = 256,
        **_harness_args: Any,
    ) -> None:
        super().__init__()
        if evaluator is None:
            if not (run or run_dir):
                raise TheseusError("the theseus model needs model_args run=<run directory> (or run=<name>,out=<OUT>)")
            where = TrainedRun.locate(str(run or run_dir), out, project, group)
            overrides = [f"eval.batch_size={batch_size}"] if str(batch_size).isdigit() else []
            chosen = _whole_number("step", step) if step is not None else None
            evaluator = Evaluator.from_checkpoint(where.path, chosen, overrides=overrides)
        self.evaluator = evaluator
        self.max_gen_toks = _whole_number("max_gen_toks", max_gen_toks)

    @classmethod
    def from_pieces(
        cls,
        model: Any,
        params: Any,
        tokenizer: Tokenizer,
        *,
        batch_size: int = 8,
        context_length: int | None = None,
        logits_fn: LogitsFn | None = None,
        max_gen_toks: int = 256,
    ) -> TheseusLM:
        """An adapter over ``model`` with fixed ``params`` (see :class:`Evaluator` for the pieces)."""
        evaluator: Evaluator[Any] = Evaluator(
            model,
            lambda: params,
            tokenizer,
            [],
            batch_size,
            context_length=context_length,
            logits_fn=logits_fn,
        )
        return cls(evaluator, max_gen_toks=max_gen_toks)

    @classmethod
    def from_run(cls, run_dir: str | Path, step: int | None = None, **kwargs: Any) -> TheseusLM:
        """An adapter over checkpoint ``step`` (default: newest) of a run directory."""
        return cls(Evaluator.from_checkpoint(Path(run_dir), step), **kwargs)

    # ------------------------------------------------------------------ helpers

    @property
    def runner(self) -> Runner:
        """The evaluator's batched scorer and generator."""
        return self.evaluator.runner

    def _context(self, text: str) -> list[int]:
        ids = self.runner.encode(text)
        return ids if ids else [self.runner.tokenizer.eot_id]

    # ------------------------------------------------------------------ lm-eval API

    def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
        """``(log P(continuation | context), greedy decoding reproduces it)`` per request."""
        rows: list[Row | None] = []
        for request in requests:
            context, continuation = request.args
            ids = self.runner.encode(continuation)
            rows.append(Row((*self._context(context), *ids), len(ids)) if ids else None)
        real = [r for r in rows if r is not None]
        scores = self.runner.score(real) if real else None
        out: list[tuple[float, bool]] = []
        k = 0
        for request, row in zip(requests, rows, strict=True):
            if row is None:  # an empty continuation has probability 1
                result = (0.0, True)
            else:
                assert scores is not None
                result = (float(scores.logprob[k]), bool(scores.greedy[k]))
                k += 1
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            out.append(result)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any]) -> list[float]:
        """Log-likelihood of each whole text, in disjoint windows of the context length."""
        width = self.runner.context_length
        rows: list[Row] = []
        owners: list[int] = []
        for i, request in enumerate(requests):
            (text,) = request.args
            ids = self.runner.encode(text)
            if ids:
                windows = rolling_windows([self.runner.tokenizer.eot_id, *ids], width, width)
                rows.extend(windows)
                owners.extend([i] * len(windows))
        totals = [0.0] * len(requests)
        if rows:
            for owner, logprob in zip(owners, self.runner.score(rows).logprob, strict=True):
                totals[owner] += float(logprob)
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        """Continuations of each context, cut at the request's ``until`` strings."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        settings: dict[tuple[Any, ...], dict[str, Any]] = {}
        for i, request in enumerate(requests):
            _, gen_kwargs = request.args
            parsed = self._generation_settings(gen_kwargs or {})
            key = (
                tuple(parsed["until"]),
                parsed["max_new_tokens"],
                parsed["temperature"],
                parsed["top_k"],
                parsed["top_p"],
            )
            groups.setdefault(key, []).append(i)
            settings[key] = parsed
        out = [""] * len(requests)
        for key, members in groups.items():
            parsed = settings[key]
            prompts = [self._context(requests[i].args[0]) for i in members]
            generations = self.runner.generate(
                prompts,
                parsed["max_new_tokens"],
                stop_strings=parsed["until"],
                temperature=parsed["temperature"],
                top_k=parsed["top_k"],
                top_p=parsed["top_p"],
            )
            for i, gen in zip(members, generations, strict=True):
                out[i] = gen.text or ""
                self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
        return out

    def _generation_settings(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        requested = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
        sample = bool(gen_kwargs.get("do_sample", False))
        temperature = float(gen_kwargs.get("temperature", 0.0) or 0.0) if sample else 0.0
        top_k = gen_kwargs.get("top_k")
        top_p = gen_kwargs.get("top_p")
        return {
            "until": until,
            "max_new_tokens": max(1, min(requested, self.runner.context_length - 1)),
            "temperature": temperature,
            "top_k": int(top_k) if sample and top_k else None,
            "top_p": float(top_p) if sample and top_p is not None and float(top_p) < 1.0 else None,
        }
