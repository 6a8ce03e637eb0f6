"""The native GPT jobs: pretraining and standalone evaluation of a checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from theseus.config import configure, field
from theseus.errors import TheseusError
from theseus.evaluation import Evaluator, EvaluatorConfig
from theseus.job import BasicJob
from theseus.model.models import GPT
from theseus.trained_run import TrainedRun
from theseus.training.trainer import BaseTrainer, BaseTrainerConfig

log = logging.getLogger("theseus")


class PretrainGPT(BaseTrainer[BaseTrainerConfig, GPT]):
    """Pretrain a native GPT (decoder-only, RoPE, pre-norm) on tokenized data."""

    MODEL = GPT
    CONFIG = BaseTrainerConfig


class EvaluateGPT(Evaluator[GPT]):
    """The evaluator of native GPT runs."""

    MODEL = GPT


@dataclass
class EvaluateCheckpointConfig:
    """Which checkpoint a standalone evaluation reads."""

    run: str = field(
        "evaluate/run", doc="the run to evaluate: a run name beside this one, or a run directory path"
    )
    step: int | None = field("evaluate/step", default=None, doc="checkpoint step (None: the newest)", ge=0)


class EvaluateGPTCheckpoint(BasicJob[EvaluateCheckpointConfig]):
    """Evaluate a GPT checkpoint standalone: eval.evaluations on the run named by evaluate.run."""

    CONFIG = EvaluateCheckpointConfig
    EVALUATOR: ClassVar[type[Evaluator[Any]]] = EvaluateGPT

    @classmethod
    def config(cls) -> list[type]:
        """The checkpoint to read plus the evaluations to run."""
        return [EvaluateCheckpointConfig, EvaluatorConfig]

    def build_evaluator(self) -> Evaluator[Any]:
        """:attr:`EVALUATOR` over the checkpoint of the run named by ``evaluate.run``, with this job's ``eval/*`` settings."""
        spec = self.spec
        target = TrainedRun.locate(self.args.run, spec.root, spec.project, spec.group)
        return self.EVALUATOR.from_checkpoint(target.path, self.args.step, settings=configure(EvaluatorConfig))

    def run(self) -> None:
        """Restore the parameters, run the evaluations, write ``results/<key>.json``."""
        evaluator = self.build_evaluator()
        scores = evaluator()
        if not scores:
            raise TheseusError("eval.evaluations is empty: name at least one evaluation to run")
        paths = evaluator.write_results(self.run_dir)
        for key, value in sorted(scores.items()):
            log.info("%-40s %.6g", key, value)
        log.info("wrote %s", ", ".join(str(p) for p in paths))
