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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from theseus.base import compile_cache
from theseus.checkpoint import PARAMS, CheckpointConfig
from theseus.config import configure, field, key_of
from theseus.errors import ConfigError, Preempted, TheseusError, TrainingDiverged
from theseus.job import RestoreableJob
from theseus.names import check_name
from theseus.progress import Progress
from theseus.training.distributed import DistributedConfig
from theseus.training.metrics import LoggingConfig, MetricsSink, format_figures, format_line, mfu_fields

if TYPE_CHECKING:
    import optax

    from theseus.model.module import Module

log = logging.getLogger("theseus")

_UNSET: Any = object()
VOCAB_MULTIPLE = 64  # a vocabulary that follows the data is padded to this (faster matmuls)
ConfigT = TypeVar("ConfigT", bound="BaseTrainerConfig")
ModelT = TypeVar("ModelT", bound="Module")


@dataclass
class DataSource:
    """One tokenized dataset under ``OUT/data/<name>`` and its share of each batch."""

    name: str
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, (int, float)) and self.rate > 0):
            raise ConfigError(f"training.data: the rate of {self.name} must be > 0, got {self.rate!r}")


def _default_data() -> list[DataSource]:
    return [DataSource("shakespeare", 1.0)]


@dataclass
class BaseTrainerConfig:
    """What every trainer reads: data, batch geometry, budget, intervals, mesh."""

    data: list[DataSource] = field(
        "training/data",
        default_factory=_default_data,
        doc="tokenized datasets under OUT/data and their shares of each batch",
        example="[{name: shakespeare, rate: 1.0}]",
    )
    batch_size: int = field(
        "training/batch_size", default=32, doc="global batch in sequences per optimizer step", ge=1
    )
    per_device_batch_size: int | None = field(
        "training/per_device_batch_size",
        default=None,
        doc="micro-batch per data-parallel device; smaller than batch/devices means gradient accumulation",
        ge=1,
        changeable=True,
    )
    steps: int | None = field(
        "training/steps", default=200, doc="optimizer steps (or set training.tokens)", ge=1, changeable=True
    )
    tokens: int | None = field(
        "training/tokens",
        default=None,
        doc="token budget; steps = tokens // (batch_size * block_size)",
        ge=1,
        changeable=True,
    )
    seed: int = field("training/seed", default=0, doc="seeds parameters, data order and dropout", ge=0)
    log_every: int = field(
        "training/log_every", default=10, doc="steps between metrics records", ge=1, changeable=True
    )
    val_every: int = field(
        "training/val_every", default=50, doc="steps between validations (0: only at the end)", ge=0,
        changeable=True,
    )
    val_batches: int = field(
        "training/val_batches", default=4, doc="fixed validation batches (0: none)", ge=0, changeable=True
    )
    shard: int = field(
        "training/shard", default=1, doc="devices that split one model copy (tensor parallel)", ge=1,
        changeable=True,
    )
    prefetch: int = field(
        "training/prefetch", default=4, doc="batches prepared ahead by a background thread", ge=1,
        changeable=True,
    )
    peak_flops: float | None = field(
        "training/peak_flops",
        default=None,
        doc="peak FLOP/s per device for MFU (None: chip table or measured)",
        gt=0,
        changeable=True,
    )


class BaseTrainer(RestoreableJob[ConfigT], Generic[ConfigT, ModelT]):
    """Pretrain ``MODEL`` on tokenized data: the generic loop every trainer inherits."""

    MODEL: ClassVar[type[Any]]
    CONFIG: ClassVar[type[Any]] = BaseTrainerConfig
    _tokenizer: Any = None
    _evaluator: Any = None
    _prepared: bool = False
    _vocab_note: str = ""

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
        from theseus.evaluation import EvaluatorConfig

        return [
            *classes, EvaluatorConfig, CheckpointConfig, LoggingConfig, DistributedConfig,
            compile_cache.CompileCacheConfig,
        ]

    # ------------------------------------------------------------------ what the evaluator reads (TrainerView)

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

    @property
    def step(self) -> int:
        """The optimizer step the parameters are at."""
        return int(self.state.step)

    # ------------------------------------------------------------------ the loop

    def prepare(self) -> None:
        """Everything that needs no run directory: processes, model, mesh, data, budget, optimizer.

        A mistake found here (missing data, a vocabulary or block size the data does not
        fit, a batch the devices cannot split) stops the run before anything is written.
        """
        if self._prepared:
            return
        from theseus.base.hardware import make_mesh
        from theseus.training.distributed import initialize

        args: BaseTrainerConfig = self.args
        initialize(configure(DistributedConfig))
        compile_cache.enable(configure(compile_cache.CompileCacheConfig))
        self.model: ModelT = configure(self.MODEL)
        self.mesh = make_mesh(args.shard)
        self._tokenizer = None
        self._evaluator = _UNSET
        self._resolved: dict[str, Any] = {}
        self._setup_data()
        self._check_memory()
        self.total_steps = self._total_steps()
        self._optimizer = self._build_optimizer()
        self._prepared = True

    def resolved(self) -> dict[str, Any]:
        """``architecture.vocab_size`` when it was left to the data (see :meth:`_follow_data_vocab`)."""
        return dict(self._resolved)

    def run(self) -> None:
        """Set up, resume if possible, train to the step budget, validate, checkpoint."""
        import jax

        self.prepare()
        if self._vocab_note:
            log.info(self._vocab_note)  # here, not in prepare(), so that it reaches the run's log.txt
        self.progress = Progress(f"training {self.spec.name}", self.total_steps, "steps")
        with self.progress, _out_of_memory_in_one_line():
            self.progress.phase("creating the parameters and optimizer state")
            self._setup_state(*self._optimizer)
            try:  # the prefetch thread places batches on the devices: it must end before the process does
                self.sink = MetricsSink(
                    self.run_dir, configure(LoggingConfig), primary=jax.process_index() == 0,
                    run_name=self.spec.name,
                )
                try:
                    self._loop()
                finally:
                    self.sink.close()
            finally:
                self.prefetcher.close()

    # ---- setup pieces

    def _block_size(self) -> int:
        if self.model.block_size is None:
            raise ConfigError(f"{type(self.model).__name__} has no block_size: the trainer needs a context length")
        return int(self.model.block_size)

    def _setup_data(self) -> None:
        import jax

        from theseus.data.loader import BatchSampler, TokenDataset, check_tokenizer, check_vocab

        args: BaseTrainerConfig = self.args
        if not args.data:
            raise ConfigError("training.data lists no datasets")
        self.datasets: list[TokenDataset] = []
        for source in args.data:
            check_name(source.name, "dataset name in training.data")
            path = self.spec.data_dir / source.name
            if not path.is_dir():
                raise TheseusError(
                    f"no tokenized dataset {source.name!r} under {self.spec.data_dir}; "
                    "run a data/tokenize_* job with the same OUT first"
                )
            ds = TokenDataset.open(path)
            if self.datasets:  # a mixture must speak one tokenizer
                first = self.datasets[0]
                check_tokenizer(
                    {**ds.meta, "dataset": source.name}, first.meta.get("tokenizer", {}),
                    f"with the tokenizer of {first.name}",
                    f"the datasets in training.data must share one tokenizer; tokenize {source.name} again "
                    f"with {first.name}'s",
                )
            self.datasets.append(ds)
        self._follow_data_vocab()
        if self.model.vocab_size is not None:
            for ds in self.datasets:
                check_vocab(ds.meta, int(self.model.vocab_size))
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
        # built here so too little validation data is found before anything is written
        self._fixed_val = self.sampler.validation_batches(args.val_batches) if args.val_batches > 0 else []

    def _follow_data_vocab(self) -> None:
        """Fill in a vocabulary size left unset: the data's, rounded up to a multiple of :data:`VOCAB_MULTIPLE`."""
        key = key_of(type(self.model), "vocab_size")
        if self.model.vocab_size is not None or key is None:
            return
        need = max(int(ds.meta["vocab_size"]) for ds in self.datasets)
        size = -(-need // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
        self.model = self.model.clone(vocab_size=size)
        self._resolved[key] = size
        self._vocab_note = (
            f"{key} follows the data: {need} ids, rounded up to {size} (a multiple of {VOCAB_MULTIPLE}); "
            "set it to override"
        )

    def _check_memory(self) -> None:
        """Refuse in one line, before anything compiles, a step that cannot fit in a device's memory.

        The estimate is a lower bound (the model's :meth:`~theseus.model.module.Module.activation_bytes`
        for one micro-batch, plus parameters and gradients), so a step that would fit is never refused.
        """
        from theseus.base.hardware import device_memory_bytes

        args: BaseTrainerConfig = self.args
        block = self._block_size()
        micro = args.batch_size // int(self.mesh.shape["batch"]) // self.accum_steps
        activations = self.model.activation_bytes(micro, block)
        capacity = device_memory_bytes()
        matmul = self.model.matmul_params()
        if activations is None or capacity is None or matmul is None:
            return
        weights = 2.0 * matmul * self.model.weight_dtype.itemsize
        need = (activations + weights) / args.shard
        if need > capacity:
            gib = 2.0**30
            raise TheseusError(
                f"a training step needs at least {need / gib:.1f} GiB per device (activations of {micro} "
                f"sequence{'s' if micro != 1 else ''} x {block} tokens: {activations / args.shard / gib:.1f} GiB, "
                f"parameters and gradients: {weights / args.shard / gib:.1f} GiB) and a device has "
                f"{capacity / gib:.1f} GiB; lower training.per_device_batch_size (gradient accumulation keeps "
                "the batch) or architecture.block_size, or recompute activations (architecture.remat=full)"
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
        from theseus.training.step import make_eval_step, make_train_step

        args: BaseTrainerConfig = self.args
        key = jax.random.key(args.seed)
        init_key, self.dropout_key = jax.random.split(key)
        self._check_data_identity(self.restore_step is not None or bool(self.checkpoints.steps()))
        self.state, shardings = self.initial_state(tx, init_key)
        self.start_step = 0
        resumed = self.resume_state(self._checkpoint_tree(self.state))
        if resumed is not None:
            tree, meta = resumed
            self.state = self._state_from_tree(tree)
            self.start_step = int(meta.get("step", int(tree["step"])))
            if self.start_step > self.total_steps:
                raise ConfigError(
                    f"run {self.spec.name} is at step {self.start_step}, past its budget of {self.total_steps} "
                    f"steps; raise training.steps, or go back with `theseus restore {self.spec.name} STEP OUT`"
                )
        elif any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(self.state)):
            # shapes only, for a restore, but every checkpoint was damaged and set aside: start afresh
            self.state, shardings = self.initial_state(tx, init_key)
        self.train_step = make_train_step(
            self.model, tx, mesh=self.mesh, state_shardings=shardings, accum_steps=self.accum_steps,
            schedule=schedule,
        )
        self.eval_step = make_eval_step(self.model, mesh=self.mesh, param_shardings=shardings.params)
        # the fixed validation set is placed on the devices once
        self.val_batches = [shard_batch(batch, self.mesh) for batch in self._fixed_val]
        self.prefetcher = Prefetcher(
            self.sampler, start_step=self.start_step, depth=max(1, args.prefetch), place=self._place_batch
        )

    def _place_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Split a host batch into micro-batches and start its transfer to the devices (prefetch thread)."""
        from theseus.training.sharding import microbatches, shard_batch

        return shard_batch(microbatches(batch, self.accum_steps), self.mesh)

    def initial_state(self, tx: optax.GradientTransformation, rng: Any) -> tuple[Any, Any]:
        """The state before the first step (a ``TrainState``) and its shardings, in the sharded layout.

        By default the model's own initialisation from ``rng``; :class:`~theseus.training.huggingface.HFTrainer`
        starts from a checkpoint's weights instead. A resumed run replaces it with its checkpoint.
        """
        from theseus.training.step import init_train_state

        return init_train_state(self.model, tx, self.mesh, rng, (1, self._block_size()))

    def _check_data_identity(self, resuming: bool) -> None:
        """Refuse to resume on data other than the run started with; record it on a fresh start."""
        import jax

        from theseus.data.loader import data_change, data_identity

        current = {ds.name: data_identity(ds) for ds in self.datasets}
        recorded = (self.run_dir.read_job() or {}).get("data")
        changed: dict[str, str] = {}
        if resuming and isinstance(recorded, dict):
            for name, identity in current.items():
                change = data_change(recorded.get(name), identity)
                if change:
                    changed[name] = change
            if changed and not self.accept_data_change:
                name, change = next(iter(changed.items()))
                raise TheseusError(
                    f"data {name} under {self.spec.data_dir} is not the data run {self.spec.name} started on "
                    f"({change}); tokenize it as it was, continue on the new data with --accept-data-change, "
                    "or start over with --fresh"
                )
        if changed:
            log.warning(
                "continuing run %s on changed data (--accept-data-change): %s",
                self.spec.name, "; ".join(f"{name}: {change}" for name, change in changed.items()),
            )
            self.record_config_event("data", self.resume_step(), data=changed)
        if (changed or not resuming or not isinstance(recorded, dict)) and jax.process_index() == 0:
            self.run_dir.update_job(data=current, tokenizer=self.datasets[0].meta.get("tokenizer"))

    @staticmethod
    def _checkpoint_tree(state: Any) -> dict[str, Any]:
        return {"step": state.step, PARAMS: state.params, "opt_state": state.opt_state}

    @staticmethod
    def _state_from_tree(tree: dict[str, Any]) -> Any:
        from theseus.training.step import TrainState

        return TrainState(step=tree["step"], params=tree[PARAMS], opt_state=tree["opt_state"])

    # ---- loop pieces

    def _loop(self) -> None:
        import jax

        from theseus.base.hardware import PeakFlops, peak_flops
        from theseus.base.process import seconds_since_start
        from theseus.training.guard import NonFiniteGuard

        args: BaseTrainerConfig = self.args
        tokens_per_step = args.batch_size * self._block_size()
        flops_per_token = self.model.flops_per_token(self._block_size())  # None: unknown, no MFU
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
        # (the prefetch thread), the state is donated, and metrics and finite flags stay on the devices
        guard = NonFiniteGuard()
        if self.start_step < self.total_steps:
            self.progress.phase("compiling the training step")
        for step in range(self.start_step + 1, self.total_steps + 1):
            t0 = time.perf_counter()
            device_batch = next(self.prefetcher)
            data_wait += time.perf_counter() - t0
            self.state, metrics = self.train_step(self.state, device_batch, self.dropout_key)
            guard.observe(metrics["finite"], step)
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
                        **mfu_fields(flops_per_token, tokens_per_step * window_steps / elapsed, peak, n_devices),
                    )
                if validate:
                    record.update(self._validate(final=last))
                self.sink.write(record)
                log.info(format_line(record, self.total_steps))
                self.progress.note(format_figures(record))
                self._stop_if_diverged(guard)
                window_steps, data_wait = 0, 0.0
                window_start = time.perf_counter()
            self.report(step, total_steps=self.total_steps)
            self.progress.update(step)
            stop = self.stop_requested()
            if stop or self.should_checkpoint(step) or last:
                self._stop_if_diverged(guard)  # a non-finite state is never saved
                self.save(step, self._checkpoint_tree(self.state), {"step": step, "seed": args.seed})
            if stop and not last:
                raise Preempted(f"stopped after step {step}")

    @staticmethod
    def _fetch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
        """The step's metrics as floats: the one place the loop waits for the devices (log steps only)."""
        import jax

        fetched = jax.device_get(metrics)
        return {key: float(fetched[key]) for key in ("loss", "lr", "grad_norm")}

    def _stop_if_diverged(self, guard: Any) -> None:
        """Stop with one line when a step went non-finite, naming it and the newest (finite) checkpoint."""
        bad = guard.first_bad_step()
        if bad is None:
            return
        self.checkpoints.wait()
        newest = self.checkpoints.latest_step()
        fixes = "a lower optimization.lr, a longer optimization.warmup_steps or an optimization.grad_clip"
        if newest is None:
            kept, how = "no checkpoint was saved", f"run it again with {fixes}"
        else:
            kept = f"the newest checkpoint, step {newest}, is finite"
            how = f"continue from it with {fixes} (theseus restore {self.spec.name} {newest} OUT optimization.lr=...)"
        raise TrainingDiverged(
            f"loss or gradients became NaN or infinite at step {bad}; training stopped and {kept}; {how}"
        )

    def _validate(self, final: bool = False) -> dict[str, float]:
        import jax

        self.progress.phase("validating")
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


@contextmanager
def _out_of_memory_in_one_line() -> Iterator[None]:
    """Turn XLA's out-of-memory error (a ``RESOURCE_EXHAUSTED`` runtime error) into one line."""
    try:
        yield
    except Exception as exc:
        if "RESOURCE_EXHAUSTED" not in str(exc) or type(exc).__name__ not in ("XlaRuntimeError", "JaxRuntimeError"):
            raise
        first = str(exc).strip().splitlines()[0][:300]
        raise TheseusError(
            f"the training step does not fit in device memory ({first}); lower "
            "training.per_device_batch_size or architecture.block_size, or set architecture.remat=full"
        ) from exc
