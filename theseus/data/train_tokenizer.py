"""``data/train_tokenizer``: train a byte-level BPE tokenizer on a registered dataset, offline.

The result is a directory the ``huggingface`` backend loads
(``tokenizer.backend=huggingface tokenizer.path=DIR``):

- ``tokenizer.json``: byte-level BPE (GPT-2 style pre-tokenization) whose last three ids
  are ``<|endoftext|>``, ``<|im_start|>`` and ``<|im_end|>``;
- ``tokenizer_config.json``: ``eos_token`` and a ChatML ``chat_template`` (with
  ``{% generation %}`` around assistant turns);
- ``theseus.json``: what it was trained on, so a second run with the same settings is a no-op.

The directory is ``OUT/data/tokenizers/<name>`` (``train_tokenizer.output`` overrides
it) and appears at once, complete, by a rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theseus.config import field
from theseus.data.chat import ENDOFTEXT, IM_END, IM_START
from theseus.data.datasets import Dataset, dataset_config_classes, dataset_options, open_dataset
from theseus.errors import TheseusError
from theseus.fsio import read_json
from theseus.job import BasicJob

SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
RECORD = "theseus.json"


@dataclass
class TrainTokenizerConfig:
    """The corpus, the vocabulary size and where the tokenizer goes."""

    dataset: str = field("data/dataset", default="shakespeare", doc="registered dataset key")
    max_documents: int | None = field(
        "data/max_documents", default=None, doc="stop after this many documents", ge=1
    )
    vocab_size: int = field(
        "train_tokenizer/vocab_size", default=4096, doc="ids in total, the 3 special tokens included", ge=259
    )
    min_frequency: int = field(
        "train_tokenizer/min_frequency", default=2, doc="rarest pair a merge may use", ge=1
    )
    directory_name: str = field(
        "train_tokenizer/name", default="", doc="directory name; default <dataset>_bpe<vocab_size>"
    )
    output: str | None = field(
        "train_tokenizer/output", default=None, doc="output directory; default OUT/data/tokenizers/<name>"
    )


def train_bpe(
    texts: Iterator[str], vocab_size: int, min_frequency: int = 2, length: int | None = None
) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` of ``vocab_size`` ids (specials last)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise TheseusError(
            f"train_tokenizer.vocab_size must be at least {256 + len(SPECIAL_TOKENS)}, got {vocab_size}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer, length=length)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def save_tokenizer_dir(tokenizer: Any, directory: Path, record: dict[str, Any]) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and the record into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    settings = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": ENDOFTEXT,
        "chat_template": CHATML_TEMPLATE,
        "model_max_length": 1 << 30,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (directory / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _texts(dataset: Dataset, limit: int | None) -> Iterator[str]:
    for count, document in enumerate(dataset):
        if limit is not None and count >= limit:
            return
        if isinstance(document, str):
            yield document
        else:
            yield from (message["content"] for message in document)


class TrainTokenizerJob(BasicJob[TrainTokenizerConfig]):
    """Train a byte-level BPE tokenizer (tokenizer.json + ChatML template) on a dataset."""

    CONFIG = TrainTokenizerConfig

    @classmethod
    def config(cls) -> list[type[Any]]:
        """The job's options and every registered dataset's options."""
        return [TrainTokenizerConfig, *dataset_config_classes()]

    def output_dir(self) -> Path:
        """Where the tokenizer goes."""
        args = self.args
        if args.output:
            return Path(args.output).expanduser()
        name = args.directory_name or f"{args.dataset}_bpe{args.vocab_size}"
        if "/" in name or name.startswith("."):
            raise TheseusError(f"train_tokenizer.name {name!r} must be a plain name")
        return self.spec.data_dir / "tokenizers" / name

    def run(self) -> None:
        """Train and save, unless the same tokenizer is already there."""
        args = self.args
        dataset = open_dataset(args.dataset)
        record = {
            "dataset": args.dataset,
            "dataset_config": dataset_options(dataset),
            "max_documents": args.max_documents,
            "vocab_size": args.vocab_size,
            "min_frequency": args.min_frequency,
        }
        target = self.output_dir()
        if (target / "tokenizer.json").exists():
            saved = read_json(target / RECORD) or {}
            if {k: v for k, v in saved.items() if k != "trained_vocab_size"} == record:
                self.log.info("%s already holds this tokenizer; nothing to do", target)
                return
            raise TheseusError(f"{target} holds another tokenizer; set train_tokenizer.name=... or delete it")
        self.log.info("training a %d-id byte-level BPE on %s", args.vocab_size, dataset.describe())
        size = dataset.size_hint()
        length = min(size, args.max_documents) if size is not None and args.max_documents else size
        tokenizer = train_bpe(
            _texts(dataset, args.max_documents), args.vocab_size, args.min_frequency, length
        )
        if tokenizer.get_vocab_size() <= 256 + len(SPECIAL_TOKENS):
            raise TheseusError(f"dataset {args.dataset} gave no text to train on")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            staging.chmod(0o755)
            save_tokenizer_dir(
                tokenizer, staging, {**record, "trained_vocab_size": tokenizer.get_vocab_size()}
            )
            if target.exists():
                shutil.rmtree(target)  # an earlier incomplete directory without tokenizer.json
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.log.info(
            "wrote %s (%d ids); use it with tokenizer.backend=huggingface tokenizer.path=%s",
            target,
            tokenizer.get_vocab_size(),
            target,
        )
