"""The tokenization jobs: a registered dataset → token files under ``OUT/data/<dataset>[_<suffix>]/``.

``data/tokenize_variable_dataset`` (:class:`TokenizeVariableDatasetJob`)
    every document's ids followed by the end-of-text id, as one flat stream per split:
    ``train.bin``, ``val.bin`` (uint16 when the vocabulary fits, else uint32).

``data/tokenize_blockwise_dataset`` (:class:`TokenizeBlockwiseDatasetJob`)
    one row of ``architecture.block_size + 1`` ids per document (truncated, then padded
    with the end-of-text id) and a loss mask per row (1 = learn this token; for chats
    with ``data.assistant_only`` only the assistant's tokens): ``train.bin``,
    ``train.mask.bin``, ``val.bin``, ``val.mask.bin``.

Both write ``meta.json`` last: the tokenizer identity (with a hash of its vocabulary),
dtype, counts, the dataset config and the split rule. A document goes to validation
when a hash of its text with ``data.split_seed`` falls below ``data.val_fraction``.

A job killed at any point resumes where its last committed chunk ended; a finished
directory makes the job a no-op; a directory written with another config (tokenizer,
dataset options, split, ...) is refused: set ``data.suffix`` to write a second one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import theseus
from theseus.config import configure, field
from theseus.data.datasets import Dataset, Document, dataset_config_classes, dataset_options, open_dataset
from theseus.data.encoding import (
    BlockChunk,
    EncodeSpec,
    VariableChunk,
    chunk_documents,
    encode_blockwise,
    encode_chunks,
    encode_variable,
    resolve_workers,
)
from theseus.data.output import TokenizedOutput, differences, locked, read_meta
from theseus.data.tokenizer import Tokenizer, TokenizerConfig, get_tokenizer
from theseus.errors import Preempted, TheseusError
from theseus.job import BasicJob
from theseus.names import check_name
from theseus.progress import Progress

SPLIT_RULE = "validation when int(sha256(f'{seed}\\0' + document)[:8 bytes]) / 2**64 < val_fraction"
UINT16_IDS = 1 << 16
COMMIT_EVERY_S = 1.0  # at most this much encoding is redone after a crash


@dataclass
class TokenizeConfig:
    """What to tokenize, where to put it and how to split it."""

    dataset: str = field("data/dataset", default="shakespeare", doc="registered dataset key")
    suffix: str = field("data/suffix", default="", doc="output goes to data/<dataset>_<suffix> when set")
    val_fraction: float = field(
        "data/val_fraction", default=0.05, doc="share of documents kept for validation", ge=0, le=1
    )
    split_seed: int = field("data/split_seed", default=0, doc="seed of the per-document train/val hash")
    max_documents: int | None = field(
        "data/max_documents", default=None, doc="stop after this many documents", ge=1
    )
    dtype: Literal["auto", "uint16", "uint32"] = field(
        "data/dtype", default="auto", doc="token dtype; auto = uint16 when the vocabulary fits"
    )
    workers: int = field(
        "data/workers", default=0, doc="encoding processes; 0 = one per core (byte backend: 1)", ge=0,
        changeable=True,
    )
    chunk_chars: int = field(
        "data/chunk_chars", default=250_000, doc="characters per unit of work sent to a worker", ge=1,
        changeable=True,
    )


@dataclass
class TokenizeBlockwiseConfig(TokenizeConfig):
    """Blockwise rows: their length, which side truncation cuts, and the chat loss mask."""

    block_size: int = field(
        "architecture/block_size", default=256, doc="model context; rows hold block_size + 1 ids", ge=1
    )
    truncation_side: Literal["right", "left"] = field(
        "data/truncation_side", default="right", doc="right keeps a long document's start, left its end"
    )
    assistant_only: bool = field(
        "data/assistant_only", default=False, doc="chats: learn only the assistant's tokens"
    )


def token_dtype(requested: str, vocab_size: int) -> str:
    """The dtype to store ids in, or :class:`TheseusError` when ``requested`` cannot hold them."""
    if requested == "auto":
        return "uint16" if vocab_size <= UINT16_IDS else "uint32"
    if requested == "uint16" and vocab_size > UINT16_IDS:
        raise TheseusError(
            f"data.dtype=uint16 holds ids below {UINT16_IDS}, but the tokenizer has {vocab_size}; "
            "use data.dtype=uint32 or auto"
        )
    return requested


def dataset_dir_name(dataset: str, suffix: str) -> str:
    """``<dataset>`` or ``<dataset>_<suffix>``."""
    name = f"{dataset}_{suffix}" if suffix else dataset
    return check_name(name, "data directory name (data.dataset and data.suffix)")


def fingerprint(settings: dict[str, Any]) -> str:
    """A hash of the settings that decide a dataset directory's content."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


C = TypeVar("C", bound=TokenizeConfig)


class _TokenizeJob(BasicJob[C]):
    """The shared skeleton: settings → directory → resumable chunked writing → meta.json."""

    HANDLES_PREEMPTION: ClassVar[bool] = True
    FORMAT: ClassVar[str]
    FILES: ClassVar[tuple[str, ...]]
    UNIT: ClassVar[str] = "tokens"
    _plan: tuple[Any, ...] | None = None

    @classmethod
    def config(cls) -> list[type[Any]]:
        """The job's options, the tokenizer, and every registered dataset's options."""
        return [cls.CONFIG, TokenizerConfig, *dataset_config_classes()]

    # ---- what the subclasses decide
    def encoder(self) -> Callable[[list[Document]], Any]:
        """The worker function turning a chunk of documents into arrays (module level, picklable)."""
        raise NotImplementedError

    def format_settings(self) -> dict[str, Any]:
        """Settings of this output format that change the files' content."""
        return {}

    def encode_spec(self, base: EncodeSpec) -> EncodeSpec:
        """The worker spec for this format."""
        return base

    def write_chunk(self, output: TokenizedOutput, chunk: Any, counters: dict[str, Any]) -> None:
        """Append one chunk's arrays and update the counters."""
        raise NotImplementedError

    def summary(self, counters: dict[str, Any]) -> dict[str, Any]:
        """The counts that go into meta.json."""
        raise NotImplementedError

    def train_size(self, counters: dict[str, Any]) -> int:
        """How much training data was written (0 is an error)."""
        raise NotImplementedError

    # ---- the run
    def prepare(self) -> None:
        """Load the tokenizer, open the dataset, name the output: a mistake there stops the job before it writes."""
        args = self.args
        tokenizer_config = configure(TokenizerConfig)
        tokenizer = get_tokenizer(tokenizer_config)
        dataset = open_dataset(args.dataset)
        dtype = token_dtype(args.dtype, tokenizer.vocab_size)
        identity = tokenizer.identity()
        settings = {
            "format": self.FORMAT,
            "dataset": args.dataset,
            "dataset_config": dataset_options(dataset),
            "tokenizer": {k: v for k, v in identity.items() if k != "path"},
            "dtype": dtype,
            "val_fraction": args.val_fraction,
            "split_seed": args.split_seed,
            "max_documents": args.max_documents,
            **self.format_settings(),
        }
        directory = self.spec.data_dir / dataset_dir_name(args.dataset, args.suffix)
        meta = read_meta(directory)
        if meta is not None and meta.get("fingerprint") != fingerprint(settings):
            self._check_done(directory, meta, settings)  # refuses, naming what differs
        self._plan = (tokenizer_config, tokenizer, dataset, dtype, identity, settings, directory)

    def run(self) -> None:
        """Tokenize (or resume, or say it is already done)."""
        if self._plan is None:
            self.prepare()
        assert self._plan is not None
        tokenizer_config, tokenizer, dataset, dtype, identity, settings, directory = self._plan
        args = self.args
        with locked(directory):
            meta = read_meta(directory)
            if meta is not None:
                self._check_done(directory, meta, settings)
                return
            output = TokenizedOutput(directory, self.FILES, fingerprint(settings))
            try:
                counters = output.start()
                if counters:
                    self.log.info("resuming %s after %d documents", directory, counters["documents"])
                spec = EncodeSpec(tokenizer_config, dataset.kind, dtype, args.val_fraction, args.split_seed)
                self._tokenize(dataset, self.encode_spec(spec), output, counters, directory)
                if counters.get("documents", 0) == 0:
                    output.discard()
                    raise TheseusError(f"dataset {args.dataset} yielded no documents")
                if self.train_size(counters) == 0:
                    raise TheseusError(
                        f"dataset {args.dataset}: every document went to validation; lower data.val_fraction"
                    )
                output.finish(self._meta(settings, identity, tokenizer, counters, output.fingerprint))
            finally:
                output.close()
        self.log.info("wrote %s: %s", directory, json.dumps(self.summary(counters)))

    def _check_done(self, directory: Path, meta: dict[str, Any], settings: dict[str, Any]) -> None:
        if meta.get("fingerprint") == fingerprint(settings):
            self.log.info("%s is already tokenized with this config; nothing to do", directory)
            return
        changed = differences(meta.get("settings", {}), settings)
        shown = ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
        raise TheseusError(
            f"{directory} was tokenized with another config ({shown or 'unknown'} differ); "
            "set data.suffix=NAME to write a second directory, or delete it"
        )

    def _tokenize(
        self,
        dataset: Dataset,
        spec: EncodeSpec,
        output: TokenizedOutput,
        counters: dict[str, Any],
        directory: Path,
    ) -> None:
        args = self.args
        done = int(counters.setdefault("documents", 0))
        documents: Iterator[Any] = dataset.iter_from(done)
        total = dataset.size_hint()
        if args.max_documents is not None:
            documents = itertools.islice(documents, max(0, args.max_documents - done))
            total = args.max_documents if total is None else min(total, args.max_documents)
        workers = resolve_workers(args.workers, spec.tokenizer.backend)
        self.log.info(
            "tokenizing %s into %s with %s (%d worker%s)",
            dataset.describe(),
            directory,
            spec.tokenizer.backend,
            workers,
            "s" if workers > 1 else "",
        )
        chunks = chunk_documents(documents, args.chunk_chars)
        committed = time.monotonic()
        with Progress(f"tokenizing {directory.name}", total, "docs") as progress:
            progress.update(done)
            for chunk in encode_chunks(chunks, spec, self.encoder(), workers):
                self.write_chunk(output, chunk, counters)
                counters["documents"] += chunk.documents
                counters["max_token_id"] = max(int(counters.get("max_token_id", -1)), chunk.max_id)
                stop = self.stop_requested()
                if stop or time.monotonic() - committed >= COMMIT_EVERY_S:
                    output.commit(counters)
                    committed = time.monotonic()
                progress.update(counters["documents"], f"{self.train_size(counters):,} train {self.UNIT}")
                self.report(counters["documents"], **self.summary(counters))
                if stop:
                    raise Preempted(f"stopped after {counters['documents']} documents; run again to resume")
        output.commit(counters)

    def _meta(
        self,
        settings: dict[str, Any],
        identity: dict[str, Any],
        tokenizer: Tokenizer,
        counters: dict[str, Any],
        digest: str,
    ) -> dict[str, Any]:
        args = self.args
        return {
            "format": self.FORMAT,
            "dataset": args.dataset,
            "dataset_config": settings["dataset_config"],
            "tokenizer": identity,
            "vocab_size": tokenizer.vocab_size,
            "eot_id": tokenizer.eot_id,
            "dtype": settings["dtype"],
            "split": {"rule": SPLIT_RULE, "val_fraction": args.val_fraction, "seed": args.split_seed},
            "max_documents": args.max_documents,
            "max_token_id": counters.get("max_token_id", -1),
            **self.summary(counters),
            "settings": settings,
            "fingerprint": digest,
            "created_at": time.time(),
            "theseus_version": theseus.__version__,
        }


class TokenizeVariableDatasetJob(_TokenizeJob[TokenizeConfig]):
    """Tokenize a dataset into flat train/val token streams (documents separated by end-of-text)."""

    CONFIG = TokenizeConfig
    FORMAT = "variable"
    FILES = ("train.bin", "val.bin")

    def encoder(self) -> Callable[[list[Document]], VariableChunk]:
        """Ids + end-of-text per document."""
        return encode_variable

    def write_chunk(self, output: TokenizedOutput, chunk: VariableChunk, counters: dict[str, Any]) -> None:
        """Append the chunk's train and val ids."""
        output.append("train.bin", chunk.train)
        output.append("val.bin", chunk.val)
        for key, value in (
            ("train_tokens", chunk.train.size),
            ("val_tokens", chunk.val.size),
            ("train_documents", chunk.train_documents),
            ("val_documents", chunk.val_documents),
            ("empty_documents", chunk.empty),
        ):
            counters[key] = int(counters.get(key, 0)) + int(value)

    def summary(self, counters: dict[str, Any]) -> dict[str, Any]:
        """Tokens and documents per split."""
        return {
            "documents": counters.get("documents", 0),
            "empty_documents": counters.get("empty_documents", 0),
            "train": {
                "tokens": counters.get("train_tokens", 0),
                "documents": counters.get("train_documents", 0),
            },
            "val": {"tokens": counters.get("val_tokens", 0), "documents": counters.get("val_documents", 0)},
        }

    def train_size(self, counters: dict[str, Any]) -> int:
        """Training tokens written."""
        return int(counters.get("train_tokens", 0))


class TokenizeBlockwiseDatasetJob(_TokenizeJob[TokenizeBlockwiseConfig]):
    """Tokenize a dataset into fixed-length rows with loss masks (one row per document)."""

    CONFIG = TokenizeBlockwiseConfig
    FORMAT = "blockwise"
    FILES = ("train.bin", "train.mask.bin", "val.bin", "val.mask.bin")
    UNIT = "rows"

    def encoder(self) -> Callable[[list[Document]], BlockChunk]:
        """One row per document."""
        return encode_blockwise

    def format_settings(self) -> dict[str, Any]:
        """Row length, truncation side and the chat mask choice."""
        args = self.args
        return {
            "block_size": args.block_size,
            "row_length": args.block_size + 1,
            "truncation_side": args.truncation_side,
            "assistant_only": args.assistant_only,
        }

    def encode_spec(self, base: EncodeSpec) -> EncodeSpec:
        """Add the row settings."""
        args = self.args
        return dataclasses.replace(
            base,
            block_size=args.block_size,
            truncation_side=args.truncation_side,
            assistant_only=args.assistant_only,
        )

    def write_chunk(self, output: TokenizedOutput, chunk: BlockChunk, counters: dict[str, Any]) -> None:
        """Append the chunk's rows and masks."""
        output.append("train.bin", chunk.train)
        output.append("train.mask.bin", chunk.train_mask)
        output.append("val.bin", chunk.val)
        output.append("val.mask.bin", chunk.val_mask)
        for key, value in (
            ("train_rows", len(chunk.train)),
            ("val_rows", len(chunk.val)),
            ("truncated", chunk.truncated),
            ("dropped", chunk.dropped),
        ):
            counters[key] = int(counters.get(key, 0)) + int(value)

    def summary(self, counters: dict[str, Any]) -> dict[str, Any]:
        """Rows per split, truncated and dropped documents."""
        args = self.args
        return {
            "block_size": args.block_size,
            "row_length": args.block_size + 1,
            "truncation_side": args.truncation_side,
            "assistant_only": args.assistant_only,
            "documents": counters.get("documents", 0),
            "truncated_documents": counters.get("truncated", 0),
            "dropped_documents": counters.get("dropped", 0),
            "train": {"rows": counters.get("train_rows", 0)},
            "val": {"rows": counters.get("val_rows", 0)},
        }

    def train_size(self, counters: dict[str, Any]) -> int:
        """Training rows written."""
        return int(counters.get("train_rows", 0))
