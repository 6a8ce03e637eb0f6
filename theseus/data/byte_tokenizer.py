"""The ``byte`` backend: UTF-8 bytes as ids 0-255, then three special tokens. Needs no files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from theseus.data.chat import ENDOFTEXT, IM_END, IM_START, encode_chatml
from theseus.data.vocab import vocab_sha256
from theseus.errors import TheseusError

SPECIALS = (ENDOFTEXT, IM_START, IM_END)


class ByteTokenizer:
    """Bytes 0-255 plus ``<|endoftext|>`` (256), ``<|im_start|>`` (257), ``<|im_end|>`` (258)."""

    eot_id = 256
    im_start_id = 257
    im_end_id = 258
    vocab_size = 256 + len(SPECIALS)

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text``."""
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of each text."""
        return [list(text.encode("utf-8")) for text in texts]

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_batch` as uint8 arrays, without Python lists (the jobs' fast path)."""
        return [np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Bytes decoded as UTF-8 (invalid sequences replaced); specials as their strings."""
        parts: list[str] = []
        run = bytearray()
        for token_id in ids:
            if 0 <= token_id < 256:
                run.append(token_id)
                continue
            if not 256 <= token_id < self.vocab_size:
                raise TheseusError(f"id {token_id} is outside the byte vocabulary (0..{self.vocab_size - 1})")
            parts.append(run.decode("utf-8", errors="replace"))
            run.clear()
            parts.append(SPECIALS[token_id - 256])
        parts.append(run.decode("utf-8", errors="replace"))
        return "".join(parts)

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """ChatML ids and the assistant mask."""
        return encode_chatml(messages, self.encode, self.im_start_id, self.im_end_id, add_generation_prompt)

    def identity(self) -> dict[str, Any]:
        """Backend ``byte`` with its (fixed) vocabulary hash."""
        tokens = [(i, bytes([i])) for i in range(256)]
        tokens += [(256 + i, name.encode()) for i, name in enumerate(SPECIALS)]
        return {
            "backend": "byte",
            "name": "byte",
            "path": None,
            "vocab_size": self.vocab_size,
            "eot_id": self.eot_id,
            "vocab_sha256": vocab_sha256(tokens),
        }
