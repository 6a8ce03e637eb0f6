"""The training benchmark: its accelerator presets have their sizes and run their bf16 step (scaled down) here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import train_throughput as bench  # noqa: E402


@pytest.mark.parametrize(("preset", "millions"), [("gpt-125m", 124), ("gpt-350m", 355)])
def test_accelerator_presets_have_their_advertised_sizes(preset: str, millions: int) -> None:
    shape = {**bench.SHAPES[preset], "position": "learned"}
    model = bench.theseus_model(shape)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"])
    assert abs(model.num_params(params) / 1e6 - millions) < 3
    assert model.compute_dtype == jnp.bfloat16 and model.weight_dtype == jnp.float32
    assert shape["seq"] in (1024, 2048)


def test_accelerator_preset_step_runs_scaled_down_on_the_cpu() -> None:
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    argv = ["--worker", "jax", "--shape", "gpt-125m", "--layers", "1", "--seq", "32", "--batch", "2",
            "--vocab", "512", "--steps", "2", "--warmup", "1", "--position", "learned"]
    proc = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), *argv], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["times"]) == 2 and 0 < report["loss"] < 6.8  # below ~ln(512) + noise: it trained
    assert report["chip"] == "cpu" and report["peak_source"] == "measured"
    assert report["flops_per_token"] > 6 * 768 * 512  # at least the LM head


def test_busy_machine_is_refused_without_force() -> None:
    args = bench.parse_args(["--max-load", "-1", "--sample-seconds", "0.2"])  # any load is too much
    with pytest.raises(SystemExit) as exit_info:
        bench.check_quiet(args)
    assert exit_info.value.code == 2
    assert bench.check_quiet(bench.parse_args(["--max-load", "-1", "--sample-seconds", "0.2", "--force"])) is False
