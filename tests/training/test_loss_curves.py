"""Performance work must not move the loss: short runs match losses recorded before it.

``loss_curves_before.json`` holds the losses and gradient norms of a few short AdamW runs
of small GPT variants, recorded from the code *before* the step was optimised. Every
variant (RoPE or learned positions, GELU or SwiGLU, scanned or unrolled, tied or untied,
remat, dropout, accumulation with padding) must reproduce them within float32 tolerance.

Regenerate the file only for an intended numerical change, and say why in the commit::

    python tests/training/test_loss_curves.py --write
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
import pytest

from theseus.base.hardware import make_mesh
from theseus.model.models import GPT
from theseus.training.optimizers import build_optimizer
from theseus.training.optimizers.adamw import AdamWConfig
from theseus.training.sharding import microbatches, shard_batch
from theseus.training.step import init_train_state, make_train_step

FIXTURE = Path(__file__).with_name("loss_curves_before.json")
STEPS = 8
BASE = {"n_layers": 2, "n_embd": 32, "n_head": 4, "vocab_size": 128, "block_size": 16}
VARIANTS: dict[str, dict[str, Any]] = {
    "rope_gelu_scan_tied": {},
    "learned_swiglu_unrolled_untied_bias_rmsnorm": {
        "position": "learned", "mlp": "swiglu", "scan_layers": False, "tie_embeddings": False,
        "bias": True, "norm": "rmsnorm",
    },
    "remat_accum2_padded": {"remat": "full", "accum": 2, "padded": True},
    "dropout": {"dropout": 0.1},
}
# losses fall from ~4.9; reordered float32 sums drift by ~1e-6 a step, far below a real change
LOSS_ATOL = 2e-5
GRAD_RTOL = 2e-4


def batches(padded: bool) -> list[dict[str, np.ndarray]]:
    """STEPS batches of 8 rows of 16 tokens, two distinct ones in turn (so the loss falls fast);
    ``padded`` masks a random tail of each row."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        x = rng.integers(0, BASE["vocab_size"], (8, 17)).astype(np.int32)
        batch = {"x": x[:, :-1], "y": x[:, 1:]}
        if padded:
            lengths = rng.integers(1, 17, 8)
            batch["mask"] = (np.arange(16)[None, :] < lengths[:, None]).astype(np.float32)
        out.append(batch)
    return [out[i % 2] for i in range(STEPS)]


def run_variant(name: str, **changes: Any) -> dict[str, list[float]]:
    """Train variant ``name`` (with ``changes``) for STEPS AdamW steps on one device; losses and gradient norms."""
    settings = {**VARIANTS[name], **changes}
    accum = settings.pop("accum", 1)
    padded = settings.pop("padded", False)
    model = GPT(**BASE, **settings)
    mesh = make_mesh(1, jax.devices()[:1])
    tx = build_optimizer("adamw", 3e-3, AdamWConfig(weight_decay=0.1, grad_clip=1.0))
    state, shardings = init_train_state(model, tx, mesh, jax.random.key(0), (1, BASE["block_size"]))
    step = make_train_step(model, tx, mesh=mesh, state_shardings=shardings, accum_steps=accum)
    assert all(leaf.dtype == jax.numpy.float32 for leaf in jax.tree_util.tree_leaves(state.params))
    losses, norms = [], []
    for batch in batches(padded):
        state, metrics = step(state, shard_batch(microbatches(batch, accum), mesh), jax.random.key(1))
        losses.append(float(metrics["loss"]))
        norms.append(float(metrics["grad_norm"]))
    return {"loss": losses, "grad_norm": norms}


@pytest.fixture(scope="module")
def before() -> dict[str, dict[str, list[float]]]:
    """The recorded curves."""
    return json.loads(FIXTURE.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_loss_curve_is_unchanged_by_optimisations(before, name: str) -> None:
    now = run_variant(name)
    assert now["loss"][-1] < now["loss"][0] - 0.3  # it learns the two batches
    np.testing.assert_allclose(now["loss"], before[name]["loss"], atol=LOSS_ATOL, rtol=0)
    np.testing.assert_allclose(now["grad_norm"], before[name]["grad_norm"], rtol=GRAD_RTOL)


def test_mixed_precision_keeps_float32_parameters_and_follows_the_float32_curve(before) -> None:
    now = run_variant("rope_gelu_scan_tied", dtype="bfloat16")  # bf16 activations and matmuls
    np.testing.assert_allclose(now["loss"], before["rope_gelu_scan_tied"]["loss"], atol=0.01, rtol=0)
    assert now["loss"] != before["rope_gelu_scan_tied"]["loss"]  # it did compute in bfloat16


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/training/test_loss_curves.py --write")
    curves = {name: run_variant(name) for name in sorted(VARIANTS)}
    FIXTURE.write_text(json.dumps(curves, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
