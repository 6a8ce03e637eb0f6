"""Evaluation kinds: perplexity, next-token accuracy, multiple choice, continuation, generation.

Each kind turns its examples into fixed-shape batches for a :class:`~theseus.evaluation.runner.Runner`,
so it works for any model that maps token ids to logits.
"""

from theseus.evaluation.kinds.base import Evaluation, EvaluationResult
from theseus.evaluation.kinds.choice import Choice, MultipleChoiceEvaluation
from theseus.evaluation.kinds.continuation import Continuation, ContinuationEvaluation
from theseus.evaluation.kinds.generation import GenerationEvaluation, Prompt, contains, exact_match
from theseus.evaluation.kinds.perplexity import NextTokenEvaluation, PerplexityEvaluation

__all__ = [
    "Choice",
    "Continuation",
    "ContinuationEvaluation",
    "Evaluation",
    "EvaluationResult",
    "GenerationEvaluation",
    "MultipleChoiceEvaluation",
    "NextTokenEvaluation",
    "PerplexityEvaluation",
    "Prompt",
    "contains",
    "exact_match",
]
