"""Peak FLOP/s for MFU: configured, from the chip table, or measured once on the CPU."""

from __future__ import annotations

import time

import pytest

from theseus.base.hardware import CHIPS, detect_chip, measure_gemm_flops, peak_flops
from theseus.errors import TheseusError


def test_configured_figure_wins() -> None:
    assert peak_flops("h100", "bfloat16", configured=123e12) == (123e12, "configured")
    with pytest.raises(TheseusError, match="positive"):
        peak_flops(configured=0.0)


def test_accelerators_come_from_the_table() -> None:
    assert peak_flops("h100", "bfloat16") == (989e12, "table")
    assert peak_flops("v5p", "bfloat16").flops == 459e12
    assert CHIPS["h200"].memory_bytes > CHIPS["h100"].memory_bytes


def test_cpu_peak_is_measured_once_and_cached() -> None:
    assert detect_chip() == "cpu"
    first = peak_flops()
    assert first.source == "measured" and 1e8 < first.flops < 1e13
    start = time.perf_counter()
    assert peak_flops() == first
    assert time.perf_counter() - start < 0.05
    assert measure_gemm_flops.cache_info().hits >= 1
