"""Keyed pseudorandom permutations of ``range(n)`` evaluated pointwise, with no state.

:func:`permute` is a small Feistel network on the next even number of bits, restricted
to ``range(n)`` by cycle walking, so ``permute(i, n, key)`` for ``i`` in ``range(n)``
visits every number once. Keys and round constants come from SHA-256, so the result
depends only on the arguments (not on NumPy's generator streams or on any global RNG).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

ROUNDS = 6
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def hash_ints(key: Sequence[int | str], count: int = 1) -> list[int]:
    """``count`` 64-bit integers derived from ``key`` by SHA-256."""
    text = "\x1f".join(str(k) for k in key).encode()
    out: list[int] = []
    block = 0
    while len(out) < count:
        digest = hashlib.sha256(text + block.to_bytes(4, "big")).digest()
        out += [int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8)]
        block += 1
    return out[:count]


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _feistel(x: np.ndarray, half: int, round_keys: list[np.uint64]) -> np.ndarray:
    mask = np.uint64((1 << half) - 1)
    left, right = x >> np.uint64(half), x & mask
    for k in round_keys:
        left, right = right, left ^ (_mix(right ^ k) & mask)
    return (left << np.uint64(half)) | right


_MASK64 = (1 << 64) - 1
SMALL = 64  # below this many indices, Python integers beat NumPy's per-call overhead


def _mix_int(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _feistel_int(x: int, half: int, round_keys: list[int]) -> int:
    mask = (1 << half) - 1
    left, right = x >> half, x & mask
    for k in round_keys:
        left, right = right, left ^ (_mix_int(right ^ k) & mask)
    return (left << half) | right


def permute(indices: np.ndarray | Sequence[int], n: int, key: Sequence[int | str]) -> np.ndarray:
    """The images of ``indices`` (each in ``range(n)``) under the permutation named by ``key``.

    Fewer than :data:`SMALL` indices (a batch's rows) are mapped with Python integers, the
    same arithmetic modulo 2**64 without NumPy's per-call cost; the result is identical.
    """
    x = np.asarray(indices, dtype=np.uint64).copy()
    if n <= 1:
        return np.zeros(x.shape, dtype=np.int64)
    if x.size and int(x.max()) >= n:
        raise ValueError(f"index {int(x.max())} is outside range({n})")
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    if x.size < SMALL:
        keys = hash_ints(key, ROUNDS)
        out = []
        for value in x.tolist():
            value = _feistel_int(value, half, keys)
            while value >= n:  # cycle walking
                value = _feistel_int(value, half, keys)
            out.append(value)
        return np.asarray(out, dtype=np.int64).reshape(x.shape)
    round_keys = [np.uint64(k) for k in hash_ints(key, ROUNDS)]
    bound = np.uint64(n)
    todo = np.ones(x.shape, dtype=bool)
    while todo.any():
        x[todo] = _feistel(x[todo], half, round_keys)
        todo = x >= bound
    return x.astype(np.int64)
