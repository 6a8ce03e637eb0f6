"""Encoding documents on every core: chunks go to worker processes, results come back in order.

:func:`encode_chunks` cuts a document stream into chunks (about ``chunk_chars``
characters each), sends them to a pool of ``spawn``-ed workers that build their own
tokenizer once (see :mod:`theseus.data.pool`), and yields the results in input order.
At most ``2 * workers`` chunks are in flight, so memory stays flat however long the stream.

The train/validation split of a document is :func:`is_validation`: a hash of the
document's text with a seed, compared with ``val_fraction``. It depends on nothing
else, so a re-run or a resumed run splits every document the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from theseus.data.chat import check_messages
from theseus.data.datasets.base import Document, Kind
from theseus.data.pool import OrderedPool
from theseus.data.tokenizer import Tokenizer, TokenizerConfig, get_tokenizer
from theseus.errors import TheseusError

MAX_CHUNK_DOCUMENTS = 4096
CHUNK_DELAY_ENV = "THESEUS_TOKENIZE_CHUNK_DELAY"  # tests only: seconds a worker sleeps per chunk


@dataclass(frozen=True)
class EncodeSpec:
    """Everything a worker needs to turn documents into arrays."""

    tokenizer: TokenizerConfig
    kind: Kind
    dtype: str
    val_fraction: float
    split_seed: int
    block_size: int | None = None  # blockwise only: rows are block_size + 1 long
    truncation_side: Literal["right", "left"] = "right"
    assistant_only: bool = False


@dataclass
class VariableChunk:
    """One chunk's ids, document by document, each followed by the end-of-text id."""

    documents: int
    train: np.ndarray
    val: np.ndarray
    train_documents: int
    val_documents: int
    empty: int
    max_id: int


@dataclass
class BlockChunk:
    """One chunk's rows (``[n, block_size + 1]``) and loss masks, per split."""

    documents: int
    train: np.ndarray
    train_mask: np.ndarray
    val: np.ndarray
    val_mask: np.ndarray
    truncated: int
    dropped: int
    max_id: int


def document_bytes(document: Document) -> bytes:
    """The canonical bytes of a document (what the split hash reads)."""
    if isinstance(document, str):
        return document.encode("utf-8")
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def is_validation(document: Document, seed: int, val_fraction: float) -> bool:
    """True when ``sha256(seed ‖ document)``, read as a number in [0, 1), is below ``val_fraction``."""
    digest = hashlib.sha256(f"{seed}\0".encode() + document_bytes(document)).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


def check_ids(ids: np.ndarray, vocab_size: int, dtype: str) -> int:
    """The largest id, after checking every id fits the vocabulary and ``dtype``."""
    if ids.size == 0:
        return -1
    top = int(ids.max())
    limit = min(vocab_size, int(np.iinfo(np.dtype(dtype)).max) + 1)
    if top >= limit or int(ids.min()) < 0:
        raise TheseusError(
            f"the tokenizer produced id {top}, outside 0..{limit - 1} ({dtype}, vocab size {vocab_size})"
        )
    return top


# --------------------------------------------------------------------------- worker side

_WORKER: dict[str, Any] = {}


def _init_pool_worker(spec: EncodeSpec) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the pool already uses every core
    _init_worker(spec)


def _init_worker(spec: EncodeSpec) -> None:
    _WORKER["spec"] = spec
    _WORKER["tokenizer"] = get_tokenizer(spec.tokenizer)
    _WORKER["delay"] = float(os.environ.get(CHUNK_DELAY_ENV) or 0)


def _worker() -> tuple[EncodeSpec, Tokenizer]:
    if _WORKER["delay"]:
        time.sleep(_WORKER["delay"])
    return _WORKER["spec"], _WORKER["tokenizer"]


def _text_arrays(tokenizer: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    if not texts:
        return []
    fast = getattr(tokenizer, "encode_arrays", None)
    if callable(fast):
        return list(fast(texts))
    return [np.asarray(ids, dtype=np.int64) for ids in tokenizer.encode_batch(texts)]


def flatten_tree(pieces: list[np.ndarray], eot: int) -> np.ndarray:
    """The pieces, each followed by ``eot``, as one int64 array."""
    out = np.empty(sum(len(p) for p in pieces) + len(pieces), dtype=np.int64)
    pos = 0
    for piece in pieces:
        out[pos : pos + len(piece)] = piece
        pos += len(piece)
        out[pos] = eot
        pos += 1
    return out


def encode_variable(documents: list[Document]) -> VariableChunk:
    """Ids + end-of-text for each document of the chunk, split into train and validation."""
    spec, tokenizer = _worker()
    pieces: dict[bool, list[np.ndarray]] = {False: [], True: []}
    empty = 0
    if spec.kind == "text":
        texts = [_text(d) for d in documents if d != ""]
        empty = len(documents) - len(texts)
        for text, ids in zip(texts, _text_arrays(tokenizer, texts)):
            pieces[is_validation(text, spec.split_seed, spec.val_fraction)].append(ids)
    else:
        for chat in documents:
            chat_ids, _ = tokenizer.encode_chat(check_messages(chat))
            pieces[is_validation(chat, spec.split_seed, spec.val_fraction)].append(
                np.asarray(chat_ids, dtype=np.int64)
            )
    train = flatten_tree(pieces[False], tokenizer.eot_id)
    val = flatten_tree(pieces[True], tokenizer.eot_id)
    top = max(
        check_ids(train, tokenizer.vocab_size, spec.dtype), check_ids(val, tokenizer.vocab_size, spec.dtype)
    )
    return VariableChunk(
        documents=len(documents),
        train=train.astype(spec.dtype),
        val=val.astype(spec.dtype),
        train_documents=len(pieces[False]),
        val_documents=len(pieces[True]),
        empty=empty,
        max_id=top,
    )


def _text(document: Document) -> str:
    if not isinstance(document, str):
        raise TheseusError(f"a text dataset yielded a {type(document).__name__}, not a string")
    return document


def _document_tokens(
    tokenizer: Tokenizer, spec: EncodeSpec, document: Document
) -> tuple[list[int], list[int]]:
    if spec.kind == "text":
        ids = [*tokenizer.encode(_text(document)), tokenizer.eot_id]
        return ids, [1] * len(ids)
    ids, mask = tokenizer.encode_chat(check_messages(document))
    return ids, (mask if spec.assistant_only else [1] * len(ids))


def encode_blockwise(documents: list[Document]) -> BlockChunk:
    """One fixed-length row (and loss mask) per document, truncated and padded, per split."""
    spec, tokenizer = _worker()
    assert spec.block_size is not None
    length = spec.block_size + 1
    rows: dict[bool, list[tuple[list[int], list[int]]]] = {False: [], True: []}
    truncated = dropped = 0
    for document in documents:
        if document == "":
            dropped += 1
            continue
        ids, mask = _document_tokens(tokenizer, spec, document)
        if len(ids) > length:
            truncated += 1
            keep = slice(None, length) if spec.truncation_side == "right" else slice(len(ids) - length, None)
            ids, mask = ids[keep], mask[keep]
        if not any(mask[1:]):  # nothing left to learn from in this row
            dropped += 1
            continue
        pad = length - len(ids)
        rows[is_validation(document, spec.split_seed, spec.val_fraction)].append(
            (ids + [tokenizer.eot_id] * pad, mask + [0] * pad)
        )

    def stack(split: bool) -> tuple[np.ndarray, np.ndarray]:
        if not rows[split]:
            return np.zeros((0, length), np.int64), np.zeros((0, length), np.uint8)
        return (
            np.array([r for r, _ in rows[split]], dtype=np.int64),
            np.array([m for _, m in rows[split]], dtype=np.uint8),
        )

    train, train_mask = stack(False)
    val, val_mask = stack(True)
    top = max(
        check_ids(train, tokenizer.vocab_size, spec.dtype), check_ids(val, tokenizer.vocab_size, spec.dtype)
    )
    return BlockChunk(
        documents=len(documents),
        train=train.astype(spec.dtype),
        train_mask=train_mask,
        val=val.astype(spec.dtype),
        val_mask=val_mask,
        truncated=truncated,
        dropped=dropped,
        max_id=top,
    )


# --------------------------------------------------------------------------- parent side


def _size(document: Document) -> int:
    if isinstance(document, str):
        return len(document)
    return sum(len(m.get("content", "")) for m in document if isinstance(m, dict)) + 16 * len(document)


def chunk_documents(documents: Iterable[Document], chunk_chars: int) -> Iterator[list[Document]]:
    """Consecutive lists of documents holding about ``chunk_chars`` characters each."""
    chunk: list[Document] = []
    chars = 0
    for document in documents:
        chunk.append(document)
        chars += _size(document)
        if chars >= chunk_chars or len(chunk) >= MAX_CHUNK_DOCUMENTS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def resolve_workers(workers: int, backend: str) -> int:
    """``workers``; when 0, one per core, except for the byte backend.

    Byte encoding costs less than sending the text to another process, so it stays here.
    """
    if workers > 0:
        return workers
    return 1 if backend == "byte" else max(1, os.cpu_count() or 1)


def encode_chunks(
    chunks: Iterable[list[Document]],
    spec: EncodeSpec,
    encode: Callable[[list[Document]], Any],
    workers: int,
) -> Iterator[Any]:
    """``encode(chunk)`` of every chunk, in order; on ``workers`` processes when above 1.

    A stream of a single chunk is encoded here: starting processes would cost more.
    """
    stream = iter(chunks)
    head = list(itertools.islice(stream, 2))
    if workers <= 1 or len(head) < 2:
        _init_worker(spec)
        for chunk in itertools.chain(head, stream):
            yield encode(chunk)
        return
    with OrderedPool(encode, workers, _init_pool_worker, (spec,)) as pool:
        yield from pool.map(itertools.chain(head, stream))
