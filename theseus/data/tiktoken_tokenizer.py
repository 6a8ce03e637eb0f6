"""The ``tiktoken`` backend: a named encoding or a local ``.tiktoken`` ranks file, chat as ChatML.

A named encoding (``tokenizer.name=r50k_base``) is loaded through tiktoken's own cache
(``TIKTOKEN_CACHE_DIR``); tiktoken downloads it on first use, so offline it must already
be cached. A ranks file (``tokenizer.path=FILE``; lines of ``base64(token) rank``) needs
nothing else: it is split with GPT-2's pattern and gets ``<|endoftext|>`` right after its
ranks. The ChatML markers take the ids right after the encoding's vocabulary.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tiktoken

from theseus.data.chat import ENDOFTEXT, IM_END, IM_START, encode_chatml
from theseus.data.vocab import vocab_sha256
from theseus.errors import TheseusError


class TiktokenTokenizer:
    """A tiktoken encoding extended with ``<|im_start|>`` / ``<|im_end|>`` for chat."""

    def __init__(self, base: tiktoken.Encoding, *, name: str, path: str | None = None) -> None:
        specials = dict(base._special_tokens)
        next_id = base.n_vocab
        if ENDOFTEXT not in specials:
            specials[ENDOFTEXT] = next_id
            next_id += 1
        for marker in (IM_START, IM_END):
            if marker not in specials:
                specials[marker] = next_id
                next_id += 1
        self._ranks: dict[bytes, int] = base._mergeable_ranks
        self._enc = tiktoken.Encoding(
            name=f"{base.name}+chatml",
            pat_str=base._pat_str,
            mergeable_ranks=base._mergeable_ranks,
            special_tokens=specials,
        )
        self._specials = specials
        self.name = name
        self.path = path

    @classmethod
    def load(cls, *, name: str | None, path: str | None) -> TiktokenTokenizer:
        """From a ranks file (``path``) or tiktoken's named encoding (``name``)."""
        if path:
            return cls(
                _encoding_from_file(Path(path)), name=name or Path(path).stem, path=str(Path(path).resolve())
            )
        if not name:
            raise TheseusError(
                "tokenizer.backend=tiktoken needs tokenizer.name (e.g. r50k_base) "
                "or tokenizer.path (a .tiktoken ranks file)"
            )
        return cls(_named_encoding(name), name=name)

    @property
    def eot_id(self) -> int:
        """The ``<|endoftext|>`` id."""
        return self._specials[ENDOFTEXT]

    @property
    def vocab_size(self) -> int:
        """Base vocabulary plus the special tokens (ChatML included)."""
        return int(self._enc.n_vocab)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special-token strings in it are plain text."""
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """tiktoken's threaded batch encoding of plain text."""
        return self._enc.encode_ordinary_batch(list(texts))

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode` of each text as a uint32 array (the jobs' fast path)."""
        return [
            self._enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=()) for text in texts
        ]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``."""
        return self._enc.decode(list(ids))

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """ChatML ids and the assistant mask."""
        return encode_chatml(
            messages, self.encode, self._specials[IM_START], self._specials[IM_END], add_generation_prompt
        )

    def identity(self) -> dict[str, Any]:
        """Backend, name, path, vocabulary size, eot id and vocabulary hash."""
        tokens = [(rank, token) for token, rank in self._ranks.items()]
        tokens += [(token_id, text.encode()) for text, token_id in self._specials.items()]
        return {
            "backend": "tiktoken",
            "name": self.name,
            "path": self.path,
            "vocab_size": self.vocab_size,
            "eot_id": self.eot_id,
            "vocab_sha256": vocab_sha256(tokens),
        }


def _named_encoding(name: str) -> tiktoken.Encoding:
    if name not in tiktoken.list_encoding_names():
        known = ", ".join(tiktoken.list_encoding_names())
        raise TheseusError(f"unknown tiktoken encoding {name!r}; known: {known}")
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:
        raise TheseusError(
            f"tiktoken encoding {name!r} is not available offline ({type(exc).__name__}); "
            f"supply a local ranks file with tokenizer.path=/path/to/{name}.tiktoken "
            "(or put it in TIKTOKEN_CACHE_DIR while online)"
        ) from exc


def _encoding_from_file(path: Path) -> tiktoken.Encoding:
    if not path.is_file():
        raise TheseusError(f"tokenizer.path {path} does not exist (expected a .tiktoken ranks file)")
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise TheseusError(
                f"{path}:{number} is not a ranks line ('base64(token) rank'); is it a .tiktoken file?"
            ) from None
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TheseusError(
            f"{path} lacks {len(missing)} of the 256 single bytes, so some text cannot be encoded"
        )
    from tiktoken_ext.openai_public import r50k_pat_str

    return tiktoken.Encoding(
        name=path.stem,
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: max(ranks.values()) + 1},
    )
