"""The evaluator: runs the configured evaluations on a model and records the scores.

Build one from a trainer (sharing its parameters; the trainer provides
:class:`TrainerView`), from a run directory's checkpoint (read through
:class:`~theseus.trained_run.TrainedRun`), or from explicit pieces; call it for flat scores
``{"<eval key>/<metric>": value}`` and write them to ``results/<eval key>.json`` in the run
directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from theseus.config import configuration, configure, current_config, field
from theseus.data.tokenizer import Tokenizer
from theseus.errors import ConfigError, TheseusError
from theseus.evaluation.kinds.base import Evaluation, EvaluationResult
from theseus.evaluation.runner import LogitsFn, ModelLogits, Runner
from theseus.inference.logits import context_length
from theseus.rundir import RunDirectory, now
from theseus.trained_run import TrainedRun

ModelT = TypeVar("ModelT")

log = logging.getLogger("theseus")


@dataclass
class EvaluatorConfig:
    """Which evaluations to run and how to batch them."""

    evaluations: list[str] = field(
        "eval/evaluations",
        default_factory=list,
        doc="evaluation keys to run (see theseus.registry.EVALUATIONS)",
        changeable=True,
    )
    batch_size: int = field(
        "eval/batch_size", default=8, doc="rows per forward pass (the last batch is padded)", ge=1,
        changeable=True,
    )
    max_examples: int | None = field(
        "eval/max_examples",
        default=None,
        doc="score only the first N examples of each evaluation (None: all)",
        ge=1,
        changeable=True,
    )
    context_length: int | None = field(
        "eval/context_length",
        default=None,
        doc="longest input fed to the model (None: the model's block_size)",
        ge=1,
        changeable=True,
    )

    @classmethod
    def components(cls) -> list[type]:
        """The config classes of every registered evaluation, so their ``eval/<key>/...`` keys can be set."""
        from theseus.registry import EVALUATIONS

        out: list[type] = []
        for _, entry in EVALUATIONS.items():
            config = getattr(entry, "CONFIG", None)
            if isinstance(config, type) and config not in out:
                out.append(config)
        return out


class TrainerView(Protocol):
    """What an evaluator reads from the trainer it runs in (:class:`~theseus.training.trainer.BaseTrainer` provides it).

    Each is read when needed: ``params`` at every evaluation (so the scores follow
    training without a copy), ``tokenizer`` only when an evaluation needs one, ``step``
    when results are written.
    """

    @property
    def model(self) -> Any:
        """The module being trained."""
        ...

    @property
    def params(self) -> Any:
        """The current parameters."""
        ...

    @property
    def mesh(self) -> Any:
        """The ``jax.sharding.Mesh`` the parameters live on, or ``None``."""
        ...

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of the training data."""
        ...

    @property
    def step(self) -> int | None:
        """The optimizer step the parameters are at."""
        ...

    @property
    def run_dir(self) -> RunDirectory | None:
        """Where results are written."""
        ...


def active_config() -> EvaluatorConfig:
    """:class:`EvaluatorConfig` from the active configuration, or its defaults outside one."""
    try:
        current_config()
    except ConfigError:
        return EvaluatorConfig()
    return configure(EvaluatorConfig)


def build_evaluation(key: str) -> Evaluation[Any]:
    """The registered evaluation ``key``, configured from the active config (TheseusError if unknown)."""
    from theseus.registry import EVALUATIONS

    entry = EVALUATIONS[key]
    is_class = isinstance(entry, type) and issubclass(entry, Evaluation)
    evaluation = entry.from_config() if is_class else entry()
    if not isinstance(evaluation, Evaluation):
        raise TheseusError(
            f"evaluation {key!r} is registered as {entry!r}, which does not make an Evaluation"
        )
    evaluation.name = key
    return evaluation


class Evaluator(Generic[ModelT]):
    """Runs evaluations on one model: ``Evaluator(...)()`` returns ``{"<key>/<metric>": float}``.

    Subclass it per model family (``class EvaluateMyRun(Evaluator[GPT]): MODEL = GPT``) so
    :meth:`from_checkpoint` knows which module to build. Pieces:

    - ``model``: a flax module with ``apply({"params": p}, idx, deterministic=True) -> logits[B, T, V]``
      (or give ``logits_fn(params, idx)`` for anything else);
    - ``params_fn()``: returns the current parameters; read at every evaluation, never copied;
    - ``tokenizer``: a :class:`theseus.data.tokenizer.Tokenizer`;
    - ``evaluations``: registry keys or :class:`Evaluation` instances;
    - ``batch_size`` rows per forward pass, ``max_examples`` (first N of each evaluation),
      ``context_length`` (default: ``model.block_size``), ``mesh`` (rows are split over its
      ``batch`` axis when they divide evenly), ``run_dir`` (where :meth:`write_results` writes).
    """

    MODEL: ClassVar[type[Any] | None] = None

    def __init__(
        self,
        model: Any,
        params_fn: Callable[[], Any],
        tokenizer: Tokenizer | None,
        evaluations: Sequence[str | Evaluation[Any]] = (),
        batch_size: int = 8,
        *,
        max_examples: int | None = None,
        context_length: int | None = None,
        logits_fn: LogitsFn | None = None,
        mesh: Any = None,
        run_dir: str | Path | None = None,
        step: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise TheseusError(f"eval.batch_size must be >= 1, got {batch_size}")
        if max_examples is not None and max_examples < 1:
            raise TheseusError(f"eval.max_examples must be >= 1 (or null for all), got {max_examples}")
        self.model = model
        self.params_fn = params_fn
        self._tokenizer = tokenizer
        self._tokenizer_fn: Callable[[], Tokenizer] | None = None
        self.batch_size = batch_size
        self.max_examples = max_examples
        self.context_length = context_length
        self.logits_fn: LogitsFn = logits_fn if logits_fn is not None else ModelLogits(model, mesh)
        self.mesh = mesh
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.step = step
        self.evaluations = [build_evaluation(e) if isinstance(e, str) else e for e in evaluations]
        names = [e.name for e in self.evaluations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TheseusError(f"evaluation {dupes[0]!r} is listed more than once")
        self.results: dict[str, EvaluationResult] = {}
        self.trainer: TrainerView | None = None
        self._runner: Runner | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def config(cls) -> list[type]:
        """Config classes an evaluation job needs: :class:`EvaluatorConfig` (with every evaluation's keys)."""
        return [EvaluatorConfig]

    @classmethod
    def from_trainer(cls, trainer: TrainerView) -> Evaluator[ModelT]:
        """An evaluator over a trainer's live state (see :class:`TrainerView`), configured from ``eval/*``.

        Results go to the trainer's run directory.
        """
        cfg = active_config()
        run_dir = trainer.run_dir
        evaluator = cls(
            trainer.model,
            lambda: trainer.params,
            None,
            cfg.evaluations,
            cfg.batch_size,
            max_examples=cfg.max_examples,
            context_length=cfg.context_length,
            mesh=trainer.mesh,
            run_dir=run_dir.path if run_dir is not None else None,
        )
        evaluator.trainer = trainer
        evaluator._tokenizer_fn = lambda: trainer.tokenizer
        return evaluator

    @classmethod
    def from_checkpoint(
        cls,
        run_dir: str | Path,
        step: int | None = None,
        *,
        overrides: Sequence[str] = (),
        tokenizer: Tokenizer | None = None,
        settings: EvaluatorConfig | None = None,
    ) -> Evaluator[ModelT]:
        """An evaluator over checkpoint ``step`` (default: the newest intact one) of the run in ``run_dir``.

        The model and the ``eval/*`` settings come from the run's ``config.yaml`` (then
        ``overrides``, ``key=value`` strings); only the parameters are read from the
        checkpoint. ``settings`` replace the run's ``eval/*`` settings (a standalone
        evaluation job passes its own; its evaluations are then configured from the active
        config). The tokenizer is the run's (see :meth:`TrainedRun.tokenizer`) unless given.
        """
        run = TrainedRun.at(run_dir)
        loaded = run.load(
            step, expected=cls.MODEL, with_config=[EvaluatorConfig], overrides=overrides, tokenizer=tokenizer
        )
        if settings is None:
            with configuration(loaded.config):
                settings = configure(EvaluatorConfig)
                evaluations = [build_evaluation(key) for key in settings.evaluations]
        else:
            evaluations = [build_evaluation(key) for key in settings.evaluations]
        params = loaded.params
        return cls(
            loaded.model,
            lambda: params,
            loaded.tokenizer,
            evaluations,
            settings.batch_size,
            max_examples=settings.max_examples,
            context_length=settings.context_length,
            run_dir=run.path,
            step=loaded.step,
        )

    # ------------------------------------------------------------------ running

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (fetched from the trainer on first use when built with :meth:`from_trainer`)."""
        if self._tokenizer is None:
            if self._tokenizer_fn is None:
                raise TheseusError("this evaluator has no tokenizer; pass one to Evaluator(...)")
            self._tokenizer = self._tokenizer_fn()
        return self._tokenizer

    def resolved_context_length(self) -> int:
        """``context_length``, else the model's ``block_size``."""
        if self.context_length is not None:
            return int(self.context_length)
        block = context_length(self.model)
        if block is None:
            raise TheseusError("cannot tell the model's context length; set eval.context_length")
        return block

    @property
    def runner(self) -> Runner:
        """The batched scorer/generator the evaluations use."""
        if self._runner is None:
            self._runner = Runner(
                self.logits_fn,
                self.params_fn,
                self.tokenizer,
                batch_size=self.batch_size,
                context_length=self.resolved_context_length(),
                mesh=self.mesh,
            )
        return self._runner

    def evaluate(self) -> dict[str, float]:
        """Run every evaluation; flat scores ``{"<key>/<metric>": value}``."""
        scores: dict[str, float] = {}
        for evaluation in self.evaluations:
            result = evaluation.run(self.runner, self.max_examples)
            self.results[evaluation.name] = result
            log.info(
                "eval %s: %s (%d examples, %.1f/s)",
                evaluation.name,
                " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()),
                result.examples,
                result.examples_per_s,
            )
            for metric, value in result.metrics.items():
                scores[f"{evaluation.name}/{metric}"] = value
        return scores

    def __call__(self) -> dict[str, float]:
        """Same as :meth:`evaluate`."""
        return self.evaluate()

    def write_results(self, run_dir: str | Path | RunDirectory | None = None) -> list[Path]:
        """Write ``results/<key>.json`` (atomically) for each evaluation run so far; returns the paths."""
        target = run_dir if run_dir is not None else self.run_dir
        if target is None:
            raise TheseusError("write_results needs a run directory")
        run = target if isinstance(target, RunDirectory) else RunDirectory(Path(target))
        if not _is_primary():
            return []
        paths = []
        for name, result in self.results.items():
            record = {
                "evaluation": name,
                "metrics": result.metrics,
                "examples": result.examples,
                "seconds": result.seconds,
                "examples_per_s": result.examples_per_s,
                "step": self.step if self.step is not None else self.trainer.step if self.trainer else None,
                "written_at": now(),
            }
            paths.append(run.write_result(name, record))
        return paths


def _is_primary() -> bool:
    import jax

    return bool(jax.process_index() == 0)
