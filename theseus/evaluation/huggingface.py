"""Evaluating Hugging Face checkpoints: :class:`HFEvaluator`.

::

    class EvaluateMyModel(HFEvaluator[MyHFModel]):
        MODEL = MyHFModel

    EvaluateMyModel.from_trainer(trainer)()                 # during training (HFTrainer does this)
    EvaluateMyModel.from_checkpoint(run_dir)()              # a run's checkpoint
    EvaluateMyModel.from_pretrained("path/to/checkpoint")() # the checkpoint's own weights, no run

Every evaluation kind works on HF-compat models (they take logits like any theseus model)
and generation-based evaluations use the checkpoint's tokenizer.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from theseus.data.tokenizer import tokenizer_in
from theseus.errors import TheseusError
from theseus.evaluation.evaluator import Evaluator, active_config
from theseus.model.huggingface import HFCompat

ModelT = TypeVar("ModelT")


class HFEvaluator(Evaluator[ModelT]):
    """An :class:`~theseus.evaluation.Evaluator` for :class:`~theseus.model.huggingface.HFCompat` models.

    ``MODEL`` defaults to ``HFCompat``, so :meth:`from_checkpoint` reads the run of any
    HF-compat model (the run's own model class is used when it is a subclass).
    """

    MODEL: ClassVar[type[Any]] = HFCompat

    @classmethod
    def from_pretrained(
        cls, model: str | HFCompat, *, run_dir: Any = None, block_size: int | None = None
    ) -> HFEvaluator[ModelT]:
        """An evaluator over a checkpoint's own weights: ``model`` is a folder, a hub id or an HFCompat.

        The ``eval/*`` settings come from the active config (defaults outside one); the
        tokenizer is the checkpoint's. ``block_size`` sets the model's context length.
        """
        if isinstance(model, str):
            model = cls.MODEL(id=model) if block_size is None else cls.MODEL(id=model, block_size=block_size)
        if not isinstance(model, HFCompat):
            raise TheseusError(f"{cls.__name__}.from_pretrained needs an HFCompat model, got {type(model).__name__}")
        tokenizer = tokenizer_in(model.checkpoint.path)
        if tokenizer is None:
            raise TheseusError(f"{model.id} has no tokenizer.json: the evaluations need the checkpoint's tokenizer")
        params = model.pretrained_params()
        cfg = active_config()
        return cls(
            model,
            lambda: params,
            tokenizer,
            cfg.evaluations,
            cfg.batch_size,
            max_examples=cfg.max_examples,
            context_length=cfg.context_length,
            run_dir=run_dir,
        )


__all__ = ["HFEvaluator"]
