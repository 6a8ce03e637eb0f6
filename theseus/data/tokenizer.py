"""Tokenizers: one protocol, three backends, chosen by :class:`TokenizerConfig`.

==============  ==============================================================
``byte``        256 byte ids plus ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``; no files
``tiktoken``    a named encoding from tiktoken's cache (``tokenizer.name=r50k_base``) or a
                ``.tiktoken`` ranks file (``tokenizer.path=...``); chat as ChatML whose
                markers take the ids right after the encoding's vocabulary
``huggingface`` a ``tokenizer.json`` or a tokenizer directory (``tokenizer.path``), or a
                hub id (``tokenizer.name``); chat through the tokenizer's own template
==============  ==============================================================

Backends may also offer ``encode_arrays(texts) -> list[numpy.ndarray]``, the same ids
without Python lists; the tokenization jobs use it when present.

Every backend encodes text as text: a document that contains the string
``<|endoftext|>`` or ``<|im_start|>`` never yields a special token. Special tokens
only come from :meth:`Tokenizer.encode_chat` (the chat markers) and from the
tokenization jobs (the end-of-text token between documents).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from theseus.config import field
from theseus.errors import TheseusError

BACKENDS = ("byte", "tiktoken", "huggingface")


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer backend provides."""

    @property
    def eot_id(self) -> int:
        """The end-of-text id appended after each document."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (every id is below it)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special-token strings inside it stay plain text."""
        ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of many texts (the backend may use several threads)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens written as their strings)."""
        ...

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """``(ids, loss_mask)`` of a conversation; the mask is 1 on assistant tokens."""
        ...

    def identity(self) -> dict[str, Any]:
        """Backend, name/path, vocab size, eot id and ``vocab_sha256`` (a hash of the vocabulary)."""
        ...


@dataclass
class TokenizerConfig:
    """Which tokenizer to use (shared by every job that tokenizes text)."""

    backend: Literal["byte", "tiktoken", "huggingface"] = field(
        "tokenizer/backend", default="byte", doc="byte | tiktoken | huggingface"
    )
    tokenizer_name: str | None = field(
        "tokenizer/name",
        default=None,
        doc="tiktoken encoding name (e.g. r50k_base) or Hugging Face hub id",
    )
    path: str | None = field(
        "tokenizer/path",
        default=None,
        doc="a .tiktoken ranks file, a tokenizer.json, or a Hugging Face tokenizer directory",
    )


def get_tokenizer(cfg: TokenizerConfig) -> Tokenizer:
    """The tokenizer ``cfg`` describes (built once per process and cached)."""
    if cfg.backend not in BACKENDS:
        raise TheseusError(f"unknown tokenizer.backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")
    return _cached(cfg.backend, cfg.tokenizer_name, cfg.path)


@functools.lru_cache(maxsize=8)
def _cached(backend: str, name: str | None, path: str | None) -> Tokenizer:
    if backend == "byte":
        from theseus.data.byte_tokenizer import ByteTokenizer

        return ByteTokenizer()
    if backend == "tiktoken":
        from theseus.data.tiktoken_tokenizer import TiktokenTokenizer

        return TiktokenTokenizer.load(name=name, path=path)
    from theseus.data.hf_tokenizer import HuggingFaceTokenizer

    return HuggingFaceTokenizer.load(name=name, path=path)


def tokenizer_from_identity(identity: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer an ``identity()`` record (as stored in ``meta.json``) describes.

    Raises :class:`TheseusError` when it cannot be loaded or its vocabulary hash differs
    from the record's (the file changed since the data was tokenized).
    """
    backend = str(identity.get("backend"))
    name = identity.get("name")
    path = identity.get("path")
    if backend not in BACKENDS:
        raise TheseusError(f"unknown tokenizer backend {backend!r} in the data's meta.json")
    if backend == "byte":
        tokenizer = _cached("byte", None, None)
    elif path and Path(str(path)).exists():
        tokenizer = _cached(backend, name, str(path))
    elif not path or (backend == "huggingface" and name and "/" in str(name)):  # a named encoding or hub id
        tokenizer = _cached(backend, name, None)
    else:
        raise TheseusError(
            f"the tokenizer the data was made with is gone ({path}); restore it or re-tokenize"
        )
    expected = identity.get("vocab_sha256")
    if expected and tokenizer.identity()["vocab_sha256"] != expected:
        raise TheseusError(
            f"tokenizer {name or path} no longer has the vocabulary the data was tokenized with; re-tokenize"
        )
    return tokenizer


def tokenizer_in(folder: Path) -> Tokenizer | None:
    """The tokenizer of a model checkpoint folder, or ``None`` when it holds no ``tokenizer.json``."""
    if not (folder / "tokenizer.json").is_file():
        return None
    return _cached("huggingface", None, str(folder))
