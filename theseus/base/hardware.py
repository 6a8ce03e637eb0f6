"""Chips, their peak throughput, and the (batch, shard) device mesh.

The peak FLOP/s of a chip is the denominator of MFU. Accelerators take it from
:data:`CHIPS` (dense, no sparsity). A CPU has no meaningful data-sheet figure, so its
peak is either given by the caller or measured once per process with a square
``jnp.dot`` GEMM; :class:`PeakFlops` says which of the three it was.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh

from theseus.base.axis import Axis
from theseus.errors import TheseusError

GiB = 1024**3
PeakSource = Literal["measured", "configured", "table"]


@dataclass(frozen=True)
class Chip:
    """Data-sheet figures for one accelerator: dense peak FLOP/s per dtype and memory.

    ``float32`` is the rate an f32 matmul gets under JAX's default precision: TF32 tensor
    cores on NVIDIA Ampere and later, one bf16 pass on TPU.
    """

    name: str
    peak: dict[str, float]
    memory_bytes: int
    kinds: tuple[str, ...]  # lower-case substrings of ``jax.Device.device_kind``


CHIPS: dict[str, Chip] = {
    chip.name: chip
    for chip in (
        Chip("h200", {"bfloat16": 989e12, "float16": 989e12, "float32": 495e12}, 141 * 10**9, ("h200",)),
        Chip("h100", {"bfloat16": 989e12, "float16": 989e12, "float32": 495e12}, 80 * GiB, ("h100",)),
        Chip("a100", {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12}, 80 * GiB, ("a100",)),
        Chip("v6e", {"bfloat16": 918e12, "float32": 918e12}, 32 * GiB, ("v6 lite", "v6e")),
        Chip("v5e", {"bfloat16": 197e12, "float32": 197e12}, 16 * GiB, ("v5 lite", "v5e")),
        Chip("v5p", {"bfloat16": 459e12, "float32": 459e12}, 95 * GiB, ("v5p", "v5")),
        Chip("v4", {"bfloat16": 275e12, "float32": 275e12}, 32 * GiB, ("v4",)),
        Chip("cpu", {}, 0, ()),
    )
}


class PeakFlops(NamedTuple):
    """A peak rate in FLOP/s per device and where the figure came from."""

    flops: float
    source: PeakSource


def detect_chip(devices: Sequence[jax.Device] | None = None) -> str:
    """The :data:`CHIPS` name of the local accelerator, ``"cpu"``, or ``"unknown"``."""
    device = (devices or jax.local_devices())[0]
    if device.platform == "cpu":
        return "cpu"
    kind = device.device_kind.lower()
    for chip in CHIPS.values():
        if any(pattern in kind for pattern in chip.kinds):
            return chip.name
    return "unknown"


def peak_flops(
    chip: str | None = None, dtype: str = "float32", *, configured: float | None = None
) -> PeakFlops:
    """Peak dense FLOP/s of one device of ``chip`` (default: the local one) for ``dtype``.

    ``configured`` wins when given. Otherwise a chip in :data:`CHIPS` with a figure for
    ``dtype`` uses the table; anything else (the CPU, an unknown accelerator) is measured
    once with a square GEMM and the result is cached for the process.
    """
    if configured is not None:
        if configured <= 0:
            raise TheseusError(f"configured peak FLOP/s must be positive, got {configured}")
        return PeakFlops(float(configured), "configured")
    name = chip or detect_chip()
    figure = CHIPS[name].peak.get(dtype) if name in CHIPS else None
    if figure is not None:
        return PeakFlops(figure, "table")
    return PeakFlops(measure_gemm_flops(dtype), "measured")


@functools.cache
def measure_gemm_flops(dtype: str = "float32", size: int = 2048, repeats: int = 3) -> float:
    """Best observed FLOP/s of a jitted ``size`` x ``size`` matmul on the default device."""
    a = jnp.ones((size, size), dtype=dtype)
    b = jnp.ones((size, size), dtype=dtype)
    matmul = jax.jit(jnp.dot)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def device_memory_bytes(device: jax.Device | None = None) -> int | None:
    """Memory one device can hold, or ``None`` when unknown.

    An accelerator reports its own limit (else :data:`CHIPS` has it); CPU devices share the
    host's physical memory, split evenly between the local CPU devices.
    """
    device = device or jax.local_devices()[0]
    if device.platform == "cpu":
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None
        return total // max(1, len(jax.local_devices(backend="cpu")))
    try:
        stats = device.memory_stats() or {}
    except Exception:  # a backend without memory statistics
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    chip = CHIPS.get(detect_chip([device]))
    return chip.memory_bytes if chip is not None and chip.memory_bytes else None


def make_mesh(shard: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 2-D mesh with axes (``batch``, ``shard``) over ``devices`` (default: all of them).

    ``shard`` devices hold one copy of the model between them (tensor parallel); the
    remaining factor replicates it (data parallel). Devices are ordered by process then
    id, so a shard group stays inside one host when it can. Raises :class:`TheseusError`
    when ``shard`` does not divide the device count.
    """
    devs = sorted(devices or jax.devices(), key=lambda d: (d.process_index, d.id))
    if shard < 1 or len(devs) % shard:
        raise TheseusError(f"{len(devs)} devices cannot be split into shard={shard}")
    grid = np.array(devs, dtype=object).reshape(len(devs) // shard, shard)
    return Mesh(grid, (Axis.BATCH.value, Axis.SHARD.value), axis_types=(AxisType.Auto, AxisType.Auto))
