"""Generation scored by a check function: exact match, contains, or your own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from theseus.evaluation.kinds.base import Evaluation
from theseus.evaluation.runner import Runner

Check = Callable[[str, str], "float | bool"]


@dataclass(frozen=True)
class Prompt:
    """A prompt and the answer its continuation is checked against."""

    prompt: str
    answer: str


def exact_match(output: str, answer: str) -> float:
    """1.0 when the output equals the answer, ignoring surrounding whitespace."""
    return float(output.strip() == answer.strip())


def contains(output: str, answer: str) -> float:
    """1.0 when the answer occurs in the output."""
    return float(answer.strip() in output)


class GenerationEvaluation(Evaluation[Prompt]):
    """Greedy continuations of prompts, each scored by :meth:`check` and averaged.

    A continuation stops at the end-of-text token, at one of ``STOP`` or after
    ``MAX_NEW_TOKENS`` tokens; the text before the stop string is checked. Metric:
    ``METRIC`` (``accuracy`` by default), the mean check value.
    """

    MAX_NEW_TOKENS: ClassVar[int] = 32
    STOP: ClassVar[tuple[str, ...]] = ("\n",)
    METRIC: ClassVar[str] = "accuracy"

    def __init__(
        self,
        config: Any = None,
        *,
        examples: Sequence[Prompt] | None = None,
        name: str | None = None,
        check: Check | None = None,
    ) -> None:
        super().__init__(config, examples=examples, name=name)
        self._check = check

    def check(self, output: str, answer: str) -> float:
        """Score of one output (``exact_match`` unless a ``check`` was given)."""
        return float((self._check or exact_match)(output, answer))

    def max_new_tokens(self, examples: Sequence[Prompt], runner: Runner) -> int:
        """Tokens to generate per prompt (at most half the context, so prompts keep room)."""
        return max(1, min(self.MAX_NEW_TOKENS, runner.context_length // 2))

    def score(self, examples: Sequence[Prompt], runner: Runner) -> dict[str, float]:
        """Mean check value of the model's continuations of ``examples``."""
        prompts = [self.encode_nonempty(runner, ex.prompt, "the prompt", i) for i, ex in enumerate(examples)]
        outputs = runner.generate(prompts, self.max_new_tokens(examples, runner), stop_strings=self.STOP)
        total = sum(self.check(out.text or "", ex.answer) for out, ex in zip(outputs, examples, strict=True))
        return {self.METRIC: total / len(examples)}
