"""``arithmetic``: synthetic sums and differences, answered by generation (offline).

Prompts look like ``"12+7="`` and the answer is ``"19"``; the model's greedy continuation,
cut at the first newline, must equal the answer. Examples come from a seeded generator,
so the same config always gives the same questions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation.kinds import GenerationEvaluation, Prompt
from theseus.evaluation.runner import Runner

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass
class ArithmeticConfig:
    """How many problems, how large, which operations."""

    n_examples: int = field(
        "eval/arithmetic/n_examples", default=200, doc="number of problems", ge=1,
        changeable=True,
    )
    max_operand: int = field(
        "eval/arithmetic/max_operand", default=99, doc="operands are drawn from 0..max_operand", ge=0,
        changeable=True,
    )
    operations: str = field(
        "eval/arithmetic/operations", default="+", doc="operators to draw from, e.g. '+-*'", changeable=True
    )
    seed: int = field("eval/arithmetic/seed", default=0, doc="seed of the problem generator", changeable=True)


def problems(cfg: ArithmeticConfig) -> list[Prompt]:
    """The ``n_examples`` problems ``cfg`` describes."""
    unknown = sorted(set(cfg.operations) - set(OPERATIONS))
    if unknown or not cfg.operations:
        raise TheseusError(
            f"eval.arithmetic.operations={cfg.operations!r}: use some of {''.join(OPERATIONS)}"
        )
    if cfg.n_examples < 1 or cfg.max_operand < 0:
        raise TheseusError("eval.arithmetic needs n_examples >= 1 and max_operand >= 0")
    rng = random.Random(cfg.seed)
    out = []
    for _ in range(cfg.n_examples):
        a, b = rng.randint(0, cfg.max_operand), rng.randint(0, cfg.max_operand)
        op = rng.choice(cfg.operations)
        out.append(Prompt(f"{a}{op}{b}=", str(OPERATIONS[op](a, b))))
    return out


class Arithmetic(GenerationEvaluation):
    """Synthetic arithmetic by greedy generation (``accuracy``: exact match)."""

    CONFIG = ArithmeticConfig
    STOP = ("\n",)

    def load(self) -> Sequence[Prompt]:
        """The seeded problems."""
        return problems(self.config)

    def max_new_tokens(self, examples: Sequence[Prompt], runner: Runner) -> int:
        """Room for the longest answer plus a newline (one token per character at worst)."""
        return max(len(ex.answer) for ex in examples) + 1
