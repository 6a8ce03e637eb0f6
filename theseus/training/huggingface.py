"""Training Hugging Face checkpoints: :class:`HFTrainer` and :class:`HFTrainerConfig`.

::

    class FinetuneMyModel(HFTrainer[MyHFModel]):
        MODEL = MyHFModel
        CONFIG = HFTrainerConfig

``HFTrainer`` is the generic loop of :class:`~theseus.training.trainer.BaseTrainer` for an
:class:`~theseus.model.huggingface.HFCompat` model. It starts from the checkpoint's weights
(each device reads only its shard), keeps the checkpoint's tokenizer, and refuses data
tokenized with another one. Continued pretraining reads data made by
``data/tokenize_variable_dataset``; supervised fine-tuning reads chats made by
``data/tokenize_blockwise_dataset`` with ``data.assistant_only=true``, whose loss mask the
loop already applies. Both tokenize with ``tokenizer.backend=huggingface
tokenizer.path=<the checkpoint folder>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from theseus.config import field
from theseus.data.tokenizer import tokenizer_in
from theseus.training.trainer import BaseTrainer, BaseTrainerConfig

if TYPE_CHECKING:
    import optax

    from theseus.model.huggingface import HFCompat

ModelT = TypeVar("ModelT", bound="HFCompat")


@dataclass
class HFTrainerConfig(BaseTrainerConfig):
    """:class:`BaseTrainerConfig` plus where the weights start from."""

    from_pretrained: bool = field(
        "training/from_pretrained",
        default=True,
        doc="start from the checkpoint's weights (false: random weights of its architecture)",
    )


class HFTrainer(BaseTrainer[HFTrainerConfig, ModelT], Generic[ModelT]):
    """Train an HF-compat model from its checkpoint's weights, with its checkpoint's tokenizer."""

    MODEL: ClassVar[type[Any]]
    CONFIG: ClassVar[type[Any]] = HFTrainerConfig

    @property
    def tokenizer(self) -> Any:
        """The checkpoint's tokenizer (``tokenizer.json`` and its chat template), else the data's."""
        if self._tokenizer is None:
            self._tokenizer = tokenizer_in(self.model.checkpoint.path) or super().tokenizer
        return self._tokenizer

    def evaluator(self) -> Any:
        """An :class:`~theseus.evaluation.huggingface.HFEvaluator` over the live parameters (if evaluations are set)."""
        from theseus.config import configure
        from theseus.evaluation import EvaluatorConfig
        from theseus.evaluation.huggingface import HFEvaluator

        if not configure(EvaluatorConfig).evaluations:
            return None
        return HFEvaluator.from_trainer(self)

    def _setup_data(self) -> None:
        self._check_data_tokenizer()
        super()._setup_data()

    def _check_data_tokenizer(self) -> None:
        """Refuse data tokenized with something else than the checkpoint's tokenizer (one line)."""
        from theseus.data.loader import check_tokenizer
        from theseus.data.output import read_meta

        tokenizer = tokenizer_in(self.model.checkpoint.path)
        if tokenizer is None:
            return
        for source in self.args.data:
            meta = read_meta(self.spec.data_dir / source.name)
            if meta is not None:
                check_tokenizer(
                    {**meta, "dataset": source.name}, tokenizer.identity(), f"with the tokenizer of {self.model.id}",
                    f"tokenize it with tokenizer.backend=huggingface tokenizer.path={self.model.checkpoint.path} "
                    "(and another data.suffix)",
                )

    def initial_state(self, tx: optax.GradientTransformation, rng: Any) -> tuple[Any, Any]:
        """The checkpoint's weights (each device reads its own shard) and a fresh optimizer state.

        When the run resumes from a checkpoint of its own, only the shapes and shardings are
        returned: the restore fills them, and the weights are never read twice.
        """
        import jax

        from theseus.training.step import TrainState, train_state_shardings

        if not self.args.from_pretrained:
            return super().initial_state(tx, rng)
        shardings = train_state_shardings(self.model, tx, self.mesh, (1, self._block_size()))
        create = jax.jit(lambda p: TrainState.create(p, tx), out_shardings=shardings, donate_argnums=0)
        if self.restore_step is not None or self.checkpoints.latest_step() is not None:
            abstract = jax.eval_shape(create, self.model.abstract_params())
            return jax.tree.map(_placed, abstract, shardings), shardings
        return create(self.model.pretrained_params(shardings.params)), shardings


def _placed(spec: Any, sharding: Any) -> Any:
    import jax

    return jax.ShapeDtypeStruct(spec.shape, spec.dtype, sharding=sharding)


__all__ = ["HFTrainer", "HFTrainerConfig"]
