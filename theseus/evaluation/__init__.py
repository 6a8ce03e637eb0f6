"""Evaluation: score a model on perplexity, multiple-choice, continuation and generation tasks.

::

    from theseus.evaluation import Evaluator
    from theseus.model.models import GPT

    class EvaluateMyRun(Evaluator[GPT]):
        MODEL = GPT

    scores = EvaluateMyRun.from_trainer(trainer)()          # {"hellaswag/acc": 0.31, ...}
    EvaluateMyRun.from_checkpoint(run_dir).write_results()  # results/<key>.json

Evaluations are registered in ``theseus/evaluation/datasets/`` (``EVALUATIONS["key"] = Cls``)
and chosen with ``eval.evaluations``.
"""

from theseus.evaluation.evaluator import Evaluator, EvaluatorConfig
from theseus.evaluation.kinds import (
    Choice,
    Continuation,
    ContinuationEvaluation,
    Evaluation,
    EvaluationResult,
    GenerationEvaluation,
    MultipleChoiceEvaluation,
    NextTokenEvaluation,
    PerplexityEvaluation,
    Prompt,
    contains,
    exact_match,
)
from theseus.evaluation.runner import ModelLogits, Runner

__all__ = [
    "Choice",
    "Continuation",
    "ContinuationEvaluation",
    "Evaluation",
    "EvaluationResult",
    "Evaluator",
    "EvaluatorConfig",
    "GenerationEvaluation",
    "ModelLogits",
    "MultipleChoiceEvaluation",
    "NextTokenEvaluation",
    "PerplexityEvaluation",
    "Prompt",
    "Runner",
    "contains",
    "exact_match",
]
