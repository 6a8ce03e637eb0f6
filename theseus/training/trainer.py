"""The core training loop: ``BaseTrainer[ConfigT, ModelT]`` and ``BaseTrainerConfig``.

A trainer subclass names its model class (``MODEL``), its config class (``CONFIG``) and,
optionally, its schedule, optimizer and evaluator::

    class PretrainGPT(BaseTrainer[BaseTrainerConfig, GPT]):
        MODEL = GPT
        CONFIG = BaseTrainerConfig

        @classmethod
        def schedule(cls):
            return "wsd"

The loop is generic — nothing in it knows about a particular model. It builds a mesh with
axes (``batch``, ``shard``), creates the parameters in their sharded layout, draws each
batch as a pure function of (seed, step, process), accumulates gradients over
micro-batches, validates on a fixed held-out set, checkpoints asynchronously and resumes
exactly (parameters, optimizer state, step; the RNG and the data position follow from
the step), and writes one ``metrics.jsonl`` record per log step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from theseus.base import compile_cache
from theseus.checkpoint import CheckpointConfig
from theseus.config import configure, field
from theseus.errors import ConfigError, Preempted, TheseusError
from theseus.job import RestoreableJob
from theseus.training.distributed import DistributedConfig
from theseus.training.metrics import LoggingConfig, MetricsSink, format_line

if TYPE_CHECKING:
    import optax

    from theseus.model.module import Module

log = logging.getLogger("theseus")

_UNSET: Any = object()
ConfigT = TypeVar("ConfigT", bound="BaseTrainerConfig")
ModelT = TypeVar("ModelT", bound="Module")


@dataclass
class DataSource:
    """One tokenized dataset under ``OUT/data/<name>`` and its share of each batch."""

    name: str
    rate: float = 1.0


def _default_data() -> list[DataSource]:
    return [DataSource("shakespeare", 1.0)]


@dataclass
class BaseTrainerConfig:
    """What every trainer reads: data, batch geometry, budget, intervals, mesh."""

    data: list[DataSource] = field(
        "training/data", default_factory=_default_data, doc="tokenized datasets under OUT/data and their rates"
    )
    batch_size: int = field("training/batch_size", default=32, doc="global batch in sequences per optimizer step")
    per_device_batch_size: int | None = field(
        "training/per_device_batch_size",
        default=None,
        doc="micro-batch per data-parallel device; smaller than batch/devices means gradient accumulation",
    )
    steps: int | None = field("training/steps", default=200, doc="optimizer steps (or set training.tokens)")
    tokens: int | None = field(
        "training/tokens", default=None, doc="token budget; steps = tokens // (batch_size * block_size)"
    )
    seed: int = field("training/seed", default=0, doc="seeds parameters, data order and dropout")
    log_every: int = field("training/log_every", default=10, doc="steps between metrics records")
    val_every: int = field("training/val_every", default=50, doc="steps between validations (0: only at the end)")
    val_batches: int = field("training/val_batches", default=4, doc="fixed validation batches")
    shard: int = field("training/shard", default=1, doc="devices that split one model copy (tensor parallel)")
    prefetch: int = field("training/prefetch", default=4, doc="batches prepared ahead by a background thread")
    peak_flops: float | None = field(
        "training/peak_flops", default=None, doc="peak FLOP/s per device for MFU (None: chip table or measured)"
    )


class BaseTrainer(RestoreableJob[ConfigT], Generic[ConfigT, ModelT]):
    """Pretrain ``MODEL`` on tokenized data: the generic loop every trainer inherits."""

    MODEL: ClassVar[type[Any]]
    CONFIG: ClassVar[type[Any]] = BaseTrainerConfig
    _tokenizer: Any = None
    _evaluator: Any = None

    # ------------------------------------------------------------------ hooks

    @classmethod
    def schedule(cls) -> optax.Schedule | str:
        """The learning-rate schedule: a registry name (``"cosine"``, ``"wsd"`` …) or a schedule."""
        return "cosine"

    @classmethod
    def optimizer(cls) -> optax.GradientTransformation | str:
        """The optimizer: a registry name (``"adamw"``, ``"sgd"``, ``"muon"``) or a transformation."""
        return "adamw"

    def evaluator(self) -> Any:
        """The evaluator run at each validation: by default the evaluations in ``eval.evaluations``.

        Override it to use an evaluator subclass (``return MyEvaluator.from_trainer(self)``);
        return ``None`` for none. It is called once; the evaluator reads the current
        parameters each time it runs.
        """
        from theseus.evaluation import Evaluator, EvaluatorConfig

        if not configure(EvaluatorConfig).evaluations:
            return None
        return Evaluator.from_trainer(self)

    @classmethod
    def config(cls) -> list[type[Any]]:
        """Trainer config, model, optimizer and schedule configs, checkpoints, logging, distribution."""
        from theseus.registry import OPTIMIZERS, SCHEDULES

        classes: list[type[Any]] = [cls.CONFIG, cls.MODEL]
        for name, registry in ((cls.schedule(), SCHEDULES), (cls.optimizer(), OPTIMIZERS)):
            if isinstance(name, str):
                classes.append(registry[name].config)
        evaluator_config = cls._evaluator_config()
        if evaluator_config is not None:
            classes.append(evaluator_config)
        return [*classes, CheckpointConfig, LoggingConfig, DistributedConfig, compile_cache.CompileCacheConfig]

    @classmethod
    def _evaluator_config(cls) -> type[Any] | None:
        try:
            from theseus.evaluation import EvaluatorConfig
        except ImportError:
            return None
        return EvaluatorConfig  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ state the evaluator reads

    @property
    def params(self) -> Any:
        """The current parameters (shared, not copied)."""
        return self.state.params

    @property
    def tokenizer(self) -> Any:
        """The tokenizer the training data was made with."""
        if self._tokenizer is None:
            from theseus.data.tokenizer import tokenizer_from_identity

            self._tokenizer = tokenizer_from_identity(self.datasets[0].meta["tokenizer"])
        return self._tokenizer

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Set up, resume if possible, train to the step budget, validate, checkpoint."""
        import jax

        from theseus.base.hardware import make_mesh
        from theseus.training.distributed import initialize

        args: BaseTrainerConfig = self.args
        initialize(configure(DistributedConfig))
        compile_cache.enable(configure(compile_cache.CompileCacheConfig))
        self.model: ModelT = configure(self.MODEL)
        self.mesh = make_mesh(args.shard)
        self._tokenizer = None
        self._evaluator = _UNSET
        self._setup_data()
        self.total_steps = self._total_steps()
        tx, schedule = self._build_optimizer()
        self._setup_state(tx, schedule)
        primary = jax.process_index() == 0
        self.sink = MetricsSink(
            self.run_dir, configure(LoggingConfig), primary=primary, run_name=self.spec.name
        )
        try:
            self._loop()
        finally:
            self.sink.close()
            self.prefetcher.close()

    # ---- setup pieces

    def _block_size(self) -> int:
        return int(self.model.block_size)

    def _setup_data(self) -> None:
        import jax

        from theseus.data.loader import BatchSampler, TokenDataset, check_vocab

        args: BaseTrainerConfig = self.args
        if not args.data:
            raise ConfigError("training.data lists no datasets")
        self.datasets = []
        for source in args.data:
            path = self.spec.data_dir / source.name
            if not path.is_dir():
                raise TheseusError(
                    f"no tokenized dataset {source.name!r} under {self.spec.data_dir}; "
                    "run a data/tokenize_* job with the same OUT first"
                )
            ds = TokenDataset.open(path)
            check_vocab(ds.meta, int(self.model.vocab_size))
            self.datasets.append(ds)
        n_batch = int(self.mesh.shape["batch"])
        if args.batch_size <= 0 or args.batch_size % n_batch:
            raise TheseusError(
                f"training.batch_size={args.batch_size} is not divisible by the {n_batch} data-parallel devices"
            )
        per_device = args.per_device_batch_size or args.batch_size // n_batch
        if per_device * n_batch > args.batch_size:
            raise TheseusError(
                f"training.per_device_batch_size={per_device} is larger than the batch allows "
                f"({args.batch_size} over {n_batch} devices = {args.batch_size // n_batch})"
            )
        if args.batch_size % (per_device * n_batch):
            raise TheseusError(
                f"training.batch_size={args.batch_size} is not a multiple of per_device_batch_size x devices "
                f"({per_device} x {n_batch})"
            )
        self.accum_steps = args.batch_size // (per_device * n_batch)
        self.sampler = BatchSampler(
            [(ds, source.rate) for ds, source in zip(self.datasets, args.data, strict=True)],
            batch_size=args.batch_size,
            block_size=self._block_size(),
            seed=args.seed,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def _total_steps(self) -> int:
        args: BaseTrainerConfig = self.args
        if args.tokens is not None:
            steps = args.tokens // (args.batch_size * self._block_size())
        elif args.steps is not None:
            steps = args.steps
        else:
            raise ConfigError("set training.steps or training.tokens")
        if steps < 1:
            raise ConfigError(f"the budget gives {steps} optimizer steps; raise training.steps or training.tokens")
        return int(steps)

    def _build_optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        from theseus.training.optimizers import build_optimizer
        from theseus.training.schedules import build_schedule

        schedule = self.schedule()
        sched = build_schedule(schedule, self.total_steps) if isinstance(schedule, str) else schedule
        optimizer = self.optimizer()
        tx = build_optimizer(optimizer, sched) if isinstance(optimizer, str) else optimizer
        return tx, sched

    def _setup_state(self, tx: optax.GradientTransformation, schedule: optax.Schedule) -> None:
        import jax

        from theseus.data.loader import Prefetcher
        from theseus.training.sharding import shard_batch
        from theseus.training.step import init_train_state, make_eval_step, make_train_step

        args: BaseTrainerConfig = self.args
        sample = (1, self._block_size())
        key = jax.random.key(args.seed)
        init_key, self.dropout_key = jax.random.split(key)
        self.state, shardings = init_train_state(self.model, tx, self.mesh, init_key, sample)
        self.start_step = 0
        resumed = self.resume_state(self._checkpoint_tree(self.state))
        if resumed is not None:
            tree, meta = resumed
            self.state = self._state_from_tree(tree)
            self.start_step = int(meta.get("step", int(tree["step"])))
        self.train_step = make_train_step(
            self.model, tx, mesh=self.mesh, state_shardings=shardings, accum_steps=self.accum_steps,
            schedule=schedule,
        )
        self.eval_step = make_eval_step(self.model, mesh=self.mesh, param_shardings=shardings.params)
        # the fixed validation set is placed on the devices once
        fixed = self.sampler.validation_batches(args.val_batches) if args.val_batches > 0 else []
        self.val_batches = [shard_batch(batch, self.mesh) for batch in fixed]
        self.prefetcher = Prefetcher(
            self.sampler, start_step=self.start_step, depth=max(1, args.prefetch), place=self._place_batch
        )

    def _place_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Split a host batch into micro-batches and start its transfer to the devices (prefetch thread)."""
        from theseus.training.sharding import microbatches, shard_batch

        return shard_batch(microbatches(batch, self.accum_steps), self.mesh)

    @staticmethod
    def _checkpoint_tree(state: Any) -> dict[str, Any]:
        return {"step": state.step, "params": state.params, "opt_state": state.opt_state}

    @staticmethod
    def _state_from_tree(tree: dict[str, Any]) -> Any:
        from theseus.training.step import TrainState

        return TrainState(step=tree["step"], params=tree["params"], opt_state=tree["opt_state"])

    # ---- loop pieces

    def _loop(self) -> None:
        import jax
        import numpy as np

        from theseus.base.hardware import PeakFlops, peak_flops
        from theseus.base.process import seconds_since_start

        args: BaseTrainerConfig = self.args
        tokens_per_step = args.batch_size * self._block_size()
        flops_per_step = self.model.flops_per_token(self._block_size()) * tokens_per_step
        peak: PeakFlops | None = None  # measured (on a CPU) at the first log step, not before the first step
        n_devices = jax.device_count()
        if self.start_step >= self.total_steps:
            log.info("already at step %d of %d", self.start_step, self.total_steps)
        else:
            log.info(
                "training %s: %d steps of %d sequences x %d tokens (%d micro-batch%s), %d devices (mesh %s), %.2fM params",
                type(self.model).__name__, self.total_steps, args.batch_size, self._block_size(),
                self.accum_steps, "es" if self.accum_steps > 1 else "", n_devices,
                dict(self.mesh.shape), self.model.num_params(self.state.params) / 1e6,
            )
        window_start = time.perf_counter()
        window_steps = 0
        data_wait = 0.0
        extra: dict[str, Any] = {}  # goes into the next record (the first step's compile time)
        # between log steps the loop never waits for the devices: batches arrive already placed
        # (the prefetch thread), the state is donated, and metrics stay on the devices
        for step in range(self.start_step + 1, self.total_steps + 1):
            t0 = time.perf_counter()
            device_batch = next(self.prefetcher)
            data_wait += time.perf_counter() - t0
            self.state, metrics = self.train_step(self.state, device_batch, self.dropout_key)
            if step == self.start_step + 1:  # the first step compiles: keep it out of the throughput
                jax.block_until_ready(metrics)
                extra["compile_time"] = time.perf_counter() - window_start
                extra["startup_time"] = seconds_since_start()
                window_start, data_wait = time.perf_counter(), 0.0
            else:
                window_steps += 1
            last = step == self.total_steps
            validate = last or (args.val_every > 0 and step % args.val_every == 0)
            if step % args.log_every == 0 or last or validate:
                record: dict[str, Any] = {
                    "step": step,
                    **self._fetch_metrics(metrics),
                    "tokens": step * tokens_per_step,
                    **extra,
                }
                elapsed = time.perf_counter() - window_start
                extra.clear()
                if window_steps:
                    peak = peak or peak_flops(configured=args.peak_flops, dtype=str(self.model.dtype))
                    record.update(
                        step_time=elapsed / window_steps,
                        data_wait=data_wait / window_steps,
                        tokens_per_s=tokens_per_step * window_steps / elapsed,
                        mfu=flops_per_step * window_steps / elapsed / (peak.flops * n_devices),
                        mfu_peak_source=peak.source,
                    )
                if not np.isfinite(record["loss"]):
                    log.warning("loss is %s at step %d", record["loss"], step)
                if validate:
                    record.update(self._validate(final=last))
                self.sink.write(record)
                log.info(format_line(record, self.total_steps))
                window_steps, data_wait = 0, 0.0
                window_start = time.perf_counter()
            self.report(step)
            stop = self.stop_requested()
            if stop or self.should_checkpoint(step) or last:
                self.save(step, self._checkpoint_tree(self.state), {"step": step, "seed": args.seed})
            if stop and not last:
                raise Preempted(f"stopped after step {step}")

    @staticmethod
    def _fetch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
        """The step's metrics as floats: the one place the loop waits for the devices (log steps only)."""
        import jax

        fetched = jax.device_get(metrics)
        return {key: float(fetched[key]) for key in ("loss", "lr", "grad_norm")}

    def _validate(self, final: bool = False) -> dict[str, float]:
        import jax

        out: dict[str, float] = {}
        if self.val_batches:
            loss_sum = 0.0
            n_tokens = 0.0
            for batch in self.val_batches:
                result = jax.device_get(self.eval_step(self.state.params, batch))
                loss_sum += float(result["loss_sum"])
                n_tokens += float(result["n_tokens"])
            out["val_loss"] = loss_sum / max(n_tokens, 1.0)
        if self._evaluator is _UNSET:
            self._evaluator = self.evaluator()
        if self._evaluator is not None:
            for key, value in self._evaluator().items():
                out[f"eval/{key}"] = float(value)
            if final and jax.process_index() == 0:
                self._evaluator.write_results()
        return out
