"""The Hugging Face jobs: fine-tune a checkpoint, evaluate a fine-tuned run or a checkpoint as it is.

``hf/train/finetune`` trains any supported checkpoint (Llama, Mistral, Qwen2, Qwen3, GPT-2,
GPT-NeoX) named by ``architecture.huggingface.model`` on data tokenized with its own
tokenizer: text for continued pretraining, chats (assistant-only loss) for supervised
fine-tuning. ``hf/evaluate`` runs ``eval.evaluations`` on a fine-tuned run's checkpoint
(``evaluate.run``) or on a checkpoint folder's own weights (``evaluate.pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from theseus.config import field
from theseus.errors import TheseusError
from theseus.evaluation import Evaluator, EvaluatorConfig
from theseus.evaluation.huggingface import HFEvaluator
from theseus.model.huggingface import HFCompat
from theseus.recipes.gpt import EvaluateGPTCheckpoint
from theseus.training.huggingface import HFTrainer, HFTrainerConfig


class FinetuneHF(HFTrainer[HFCompat]):
    """Fine-tune a Hugging Face checkpoint (Llama, Mistral, Qwen2/3, GPT-2, GPT-NeoX) on text or chats."""

    MODEL = HFCompat
    CONFIG = HFTrainerConfig


class EvaluateHF(HFEvaluator[HFCompat]):
    """The evaluator of HF-compat runs and checkpoints."""

    MODEL = HFCompat


@dataclass
class EvaluateHFConfig:
    """What a standalone HF evaluation reads: a fine-tuned run, or a checkpoint as it is."""

    run: str | None = field(
        "evaluate/run", default=None, doc="a fine-tuned run: a run name beside this one, or a run directory"
    )
    step: int | None = field("evaluate/step", default=None, doc="checkpoint step of the run (None: the newest)", ge=0)
    pretrained: str | None = field(
        "evaluate/pretrained", default=None, doc="or a checkpoint folder (or hub id) evaluated with its own weights"
    )


class EvaluateHFCheckpoint(EvaluateGPTCheckpoint):
    """Evaluate a fine-tuned HF run (evaluate.run) or a checkpoint as it is (evaluate.pretrained)."""

    CONFIG = EvaluateHFConfig  # type: ignore[assignment]  # evaluate.run is optional here
    EVALUATOR = EvaluateHF

    @classmethod
    def config(cls) -> list[type]:
        """The run or checkpoint to read plus the evaluations to run."""
        return [EvaluateHFConfig, EvaluatorConfig]

    def build_evaluator(self) -> Evaluator[Any]:
        """:class:`EvaluateHF` over the run's checkpoint, or over the checkpoint folder's weights."""
        args = cast(EvaluateHFConfig, self.args)
        if (args.run is None) == (args.pretrained is None):
            raise TheseusError(
                "set one of evaluate.run (a fine-tuned run) and evaluate.pretrained (a checkpoint folder)"
            )
        if args.pretrained is not None:
            return EvaluateHF.from_pretrained(args.pretrained)
        return super().build_evaluator()
