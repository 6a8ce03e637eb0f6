"""The Module contract as the spec states it (customization patterns, Pattern 2).

A model that implements only ``components()``, ``sharding`` and ``__call__`` (its settings are
config fields) trains, evaluates and generates through the real CLI: its FLOPs are counted
from its forward pass (so MFU is reported), and it generates by full recomputation since it
has no decoding hook. The FLOP counter itself is checked against PaLM's formula, which the
native GPT states, and reports "unknown" for a model without a matrix product.
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax.numpy as jnp
import pytest
from clihelp import run_cli, tokenize_tiny_shakespeare

from theseus.base.hardware import PeakFlops
from theseus.errors import TheseusError
from theseus.model.flops import counted_flops_per_token
from theseus.model.models import GPT
from theseus.model.module import Module
from theseus.training.metrics import mfu_fields

PATTERN_2 = '''
import flax.linen as nn
import jax.numpy as jnp

from theseus.base.axis import Axis
from theseus.config import field
from theseus.model.axes import Axes
from theseus.model.layers import Embedding
from theseus.model.module import Module
from theseus.registry import JOBS
from theseus.training.trainer import BaseTrainer, BaseTrainerConfig


class RunningMean(Module):
    """Each position's embedding plus the mean of those before it, read out through the embedding table."""

    vocab_size: int = field("architecture/vocab_size", default=320)
    block_size: int = field("architecture/block_size", default=32)
    n_embd: int = field("architecture/n_embd", default=32)

    @classmethod
    def components(cls):
        return []

    @property
    def sharding(self):
        return [(Axes.VOCAB.value, Axis.SHARD), (Axes.N_EMBD.value, None)]

    @nn.compact
    def __call__(self, idx, *, deterministic=True):
        tokens = Embedding(self.vocab_size, self.n_embd, name="tokens")
        x = tokens(idx)
        seen = jnp.cumsum(x, axis=1) / jnp.arange(1, idx.shape[1] + 1)[None, :, None]
        return tokens.attend(x + seen)


class PretrainRunningMean(BaseTrainer[BaseTrainerConfig, RunningMean]):
    """Pretrain RunningMean."""

    MODEL = RunningMean
    CONFIG = BaseTrainerConfig


JOBS["test/running_mean/train"] = PretrainRunningMean
'''


def test_a_module_with_only_the_three_spec_members_trains_evaluates_and_generates(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tokenize_tiny_shakespeare(out)
    plugin = tmp_path / "running_mean.py"
    plugin.write_text(PATTERN_2)
    cfg = tmp_path / "rm.yaml"
    run_cli("configure", "test/running_mean/train", str(cfg), "--load", str(plugin), "training.steps=4",
            "training.batch_size=8", "training.log_every=2", "training.val_every=4", "training.val_batches=1",
            "eval.evaluations=[shakespeare_ppl]", "eval.max_examples=2", check=True)
    run_cli("run", "rm", str(cfg), str(out), "--load", str(plugin), check=True)

    run = out / "runs" / "default" / "default" / "rm"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert last["step"] == 4 and last["mfu"] > 0  # the FLOPs were counted, not demanded
    assert last["eval/shakespeare_ppl/perplexity"] > 1.0
    assert json.loads((run / "results" / "shakespeare_ppl.json").read_text())["step"] == 4

    proc = run_cli("generate", "rm", str(out), "--load", str(plugin), "--prompt", "ROMEO:", "--temperature", "0",
                   "--max-new-tokens", "6", check=True)
    assert proc.stdout.startswith("ROMEO:") and len(proc.stdout.rstrip("\n")) > len("ROMEO:")
    assert "full recomputation" in proc.stderr and "checkpoint 4" in proc.stderr


@pytest.mark.parametrize("scan_layers", [True, False])
def test_counted_flops_equal_the_palm_formula_gpt_states(scan_layers):
    model = GPT(n_layers=3, n_embd=32, n_head=2, block_size=16, vocab_size=64, mlp="swiglu",
                scan_layers=scan_layers)
    # a scanned model's layers are counted once per layer, unlike XLA's cost analysis of the loop
    assert counted_flops_per_token(model, 16) == pytest.approx(model.flops_per_token(16))


class Bigram(Module):
    """logits = table[idx]: a lookup, no matrix product."""

    @property
    def sharding(self):
        return []

    @nn.compact
    def __call__(self, idx, *, deterministic=True):
        return self.param("table", nn.initializers.zeros, (8, 8))[idx] + jnp.zeros(())


def test_a_model_without_sharding_rules_is_told_in_one_line():
    with pytest.raises(TheseusError, match="Module must define its sharding rules"):
        _ = Module().sharding


def test_a_model_without_matrix_products_has_unknown_flops_and_no_mfu():
    flops = Bigram().flops_per_token(4)
    assert flops is None
    assert mfu_fields(flops, 1000.0, PeakFlops(1e9, "configured"), 8) == {}
    assert mfu_fields(10.0, 1000.0, PeakFlops(1e9, "configured"), 8) == {
        "mfu": 10.0 * 1000.0 / 8e9, "mfu_peak_source": "configured"
    }
