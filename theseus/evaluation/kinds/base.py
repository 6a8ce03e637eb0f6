"""What every evaluation is: a list of examples and a way to score a model on them."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from theseus.config import configure, current_config
from theseus.errors import ConfigError, TheseusError
from theseus.evaluation.runner import Runner

ExampleT = TypeVar("ExampleT")

_LOADED: dict[tuple[type, str], list[Any]] = {}
_LOADED_MAX = 16


@dataclass(frozen=True)
class EvaluationResult:
    """The metrics of one evaluation run, how many examples it scored and how long it took."""

    metrics: dict[str, float]
    examples: int
    seconds: float

    @property
    def examples_per_s(self) -> float:
        """Throughput of the run."""
        return self.examples / self.seconds if self.seconds > 0 else float("inf")


class Evaluation(ABC, Generic[ExampleT]):
    """A named set of examples scored by one evaluation kind.

    Subclass a kind (:class:`PerplexityEvaluation`, :class:`MultipleChoiceEvaluation`,
    :class:`GenerationEvaluation`, :class:`NextTokenEvaluation`,
    :class:`ContinuationEvaluation`) and override :meth:`load`, or pass ``examples``
    directly. ``CONFIG`` is an optional dataclass of :func:`theseus.config.field` keys
    (under ``eval/<key>/...``); the evaluator hydrates it from the active config and
    passes it as ``config``.
    """

    CONFIG: ClassVar[type[Any] | None] = None
    #: a short description shown by listings
    DESCRIPTION: ClassVar[str] = ""

    def __init__(
        self,
        config: Any = None,
        *,
        examples: Sequence[ExampleT] | None = None,
        name: str | None = None,
    ) -> None:
        if config is None and self.CONFIG is not None:
            config = self.CONFIG()
        self.config = config
        self.name = name or type(self).__name__
        self._examples = list(examples) if examples is not None else None

    @classmethod
    def from_config(cls) -> Evaluation[ExampleT]:
        """An instance whose ``CONFIG`` comes from the active configuration (class defaults outside one)."""
        if cls.CONFIG is None:
            return cls()
        try:
            current_config()
        except ConfigError:
            return cls()
        return cls(configure(cls.CONFIG))

    def load(self) -> Sequence[ExampleT]:
        """Every example, in a fixed order (subclasses without ``examples=`` override this)."""
        if self._examples is None:
            raise TheseusError(f"{type(self).__name__} must override load() or be given examples=")
        return self._examples

    def examples(self, max_examples: int | None = None) -> list[ExampleT]:
        """The first ``max_examples`` examples (all when ``None``); loaded once per instance."""
        if self._examples is None:
            self._examples = self._load_cached()
        chosen = self._examples if max_examples is None else self._examples[:max_examples]
        if not chosen:
            raise TheseusError(f"evaluation {self.name} has no examples")
        return chosen

    def _load_cached(self) -> list[ExampleT]:
        """:meth:`load`, remembered per (class, config) so repeated evaluators (one per validation) load once."""
        if self.CONFIG is None:
            return list(self.load())
        key = (type(self), repr(self.config))
        if key not in _LOADED:
            if len(_LOADED) >= _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = list(self.load())
        return list(_LOADED[key])

    @abstractmethod
    def score(self, examples: Sequence[ExampleT], runner: Runner) -> dict[str, float]:
        """Metrics of the model behind ``runner`` on ``examples``."""

    def run(self, runner: Runner, max_examples: int | None = None) -> EvaluationResult:
        """Score the (first ``max_examples``) examples and time it."""
        chosen = self.examples(max_examples)
        start = time.perf_counter()
        metrics = self.score(chosen, runner)
        return EvaluationResult(
            {k: float(v) for k, v in metrics.items()}, len(chosen), time.perf_counter() - start
        )

    def encode_nonempty(self, runner: Runner, text: str, what: str, index: int) -> list[int]:
        """``text``'s ids, or :class:`TheseusError` naming the example when there are none."""
        ids = runner.encode(text)
        if not ids:
            raise TheseusError(
                f"evaluation {self.name}: {what} of example {index} is empty after tokenization ({text!r})"
            )
        return ids

    def context_ids(self, runner: Runner, text: str) -> list[int]:
        """``text``'s ids; an empty context becomes the end-of-text token, so the first token has a context."""
        ids = runner.encode(text)
        return ids if ids else [runner.tokenizer.eot_id]
