"""Learning-rate schedules: values at the boundary steps, warmup resolution, bad settings."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus.config import build, configuration
from theseus.errors import TheseusError
from theseus.training.schedules import build_schedule
from theseus.training.schedules.base import DecayConfig, WarmupConfig
from theseus.training.schedules.wsd import WSDConfig

LR = 1e-3
TOTAL = 100


def at(schedule, *steps: int) -> list[float]:
    """Schedule values at integer steps (as the train step calls it: a traced int32)."""
    return [float(v) for v in jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32))]


def test_constant_with_warmup() -> None:
    schedule = build_schedule("constant", TOTAL, WarmupConfig(lr=LR, warmup_steps=10))
    np.testing.assert_allclose(at(schedule, 0, 4, 9, 10, 50, 99), [LR / 10, LR / 2, LR, LR, LR, LR], rtol=1e-6)
    flat = build_schedule("constant", TOTAL, WarmupConfig(lr=LR, warmup_pct=0.0))
    np.testing.assert_allclose(at(flat, 0, 99), [LR, LR], rtol=1e-6)


def test_cosine_boundaries() -> None:
    schedule = build_schedule("cosine", TOTAL, DecayConfig(lr=LR, warmup_steps=10, min_lr_ratio=0.1))
    start, end_warmup, peak, last, after = at(schedule, 0, 9, 10, 99, 150)
    np.testing.assert_allclose([start, end_warmup, peak, last, after], [LR / 10, LR, LR, LR / 10, LR / 10], rtol=1e-5)
    values = at(schedule, *range(10, 100))
    assert all(a >= b for a, b in itertools.pairwise(values))
    # halfway through the decay the cosine is at the middle of peak and floor
    halfway = build_schedule("cosine", 21, DecayConfig(lr=LR, warmup_steps=0, min_lr_ratio=0.0))
    np.testing.assert_allclose(at(halfway, 10), [LR / 2], rtol=1e-5)


def test_linear_boundaries() -> None:
    schedule = build_schedule("linear", 21, DecayConfig(lr=LR, warmup_steps=0, min_lr_ratio=0.2))
    np.testing.assert_allclose(at(schedule, 0, 10, 20), [LR, 0.6 * LR, 0.2 * LR], rtol=1e-5)


def test_wsd_boundaries() -> None:
    cfg = WSDConfig(lr=LR, warmup_steps=5, decay_pct=0.2, min_lr_ratio=0.0)
    schedule = build_schedule("wsd", TOTAL, cfg)
    # warmup 0..4, stable 5..79, decay 80..99
    values = at(schedule, 0, 4, 5, 79, 80, 81, 99)
    np.testing.assert_allclose(values[:5], [LR / 5, LR, LR, LR, LR], rtol=1e-6)
    assert values[5] < LR and values[6] == 0.0
    for shape in ("sqrt", "cosine"):
        shaped = build_schedule("wsd", TOTAL, WSDConfig(lr=LR, warmup_steps=5, decay_pct=0.2, decay_shape=shape))
        np.testing.assert_allclose(at(shaped, 80, 99), [LR, LR * 0.1], rtol=1e-5)
    one_step_decay = build_schedule("wsd", 10, WSDConfig(lr=LR, warmup_steps=0, decay_pct=0.1, min_lr_ratio=0.5))
    np.testing.assert_allclose(at(one_step_decay, 8, 9), [LR, LR / 2], rtol=1e-6)


def test_warmup_pct_resolves_against_total_steps() -> None:
    assert WarmupConfig(warmup_pct=0.01).warmup(1000) == 10
    assert WarmupConfig(warmup_steps=3, warmup_pct=0.5).warmup(1000) == 3


def test_schedules_are_configured_from_the_active_config() -> None:
    cfg = build(WSDConfig)
    cfg.optimization.lr = 0.5
    cfg.optimization.warmup_pct = 0.0
    with configuration(cfg):
        schedule = build_schedule("wsd", TOTAL)
    assert at(schedule, 0) == [0.5]


def test_impossible_settings_are_user_errors() -> None:
    with pytest.raises(TheseusError, match="do not fit"):
        build_schedule("wsd", 10, WSDConfig(warmup_steps=5, decay_pct=0.6))
    with pytest.raises(TheseusError, match="at least one training step"):
        build_schedule("cosine", 0, DecayConfig())
    with pytest.raises(TheseusError, match="unknown schedule"):
        build_schedule("cosin", 10)


@pytest.mark.parametrize("name", ["cosine", "linear", "wsd"])
def test_decay_ends_exactly_on_the_floor_and_never_below(name: str) -> None:
    cfg = WSDConfig(lr=LR, warmup_steps=3, decay_pct=0.3, min_lr_ratio=0.0) if name == "wsd" else DecayConfig(
        lr=LR, warmup_steps=3, min_lr_ratio=0.0
    )
    values = at(build_schedule(name, 37, cfg), *range(0, 40))
    assert values[36] == 0.0 and min(values) >= 0.0
