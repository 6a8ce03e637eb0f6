"""Tiny models with hand-set weights for the evaluation tests.

``TableLM`` is a bigram model: the logits at a position are the row of ``table`` picked by
the token there, so every score can be computed by hand with numpy. ``PositionLM``'s logits
depend only on the position inside the window (to check where each token is scored).
``PrefixSumLM`` is causal and depends on every earlier token (to check padding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from theseus.checkpoint import CheckpointManager
from theseus.config import field
from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.evaluation import PerplexityEvaluation
from theseus.registry import EVALUATIONS

VOCAB = ByteTokenizer.vocab_size  # 259
EOT = ByteTokenizer.eot_id
TOY_DOCS = ["the first toy document", "and a second one"]


class TableLM(nn.Module):
    """logits[b, t] = table[idx[b, t]]."""

    vocab_size: int = field("architecture/vocab_size", default=VOCAB)
    block_size: int = field("architecture/block_size", default=16)

    @nn.compact
    def __call__(self, idx: jax.Array, deterministic: bool = True) -> jax.Array:
        table = self.param("table", nn.initializers.normal(1.0), (self.vocab_size, self.vocab_size))
        return table[idx]


class PositionLM(nn.Module):
    """logits[b, t] = table[t]: the prediction depends only on the position in the window."""

    vocab_size: int = VOCAB
    block_size: int = 16

    @nn.compact
    def __call__(self, idx: jax.Array, deterministic: bool = True) -> jax.Array:
        table = self.param("table", nn.initializers.normal(1.0), (self.block_size, self.vocab_size))
        return jnp.broadcast_to(table[: idx.shape[1]][None], (*idx.shape, self.vocab_size))


class PrefixSumLM(nn.Module):
    """logits[b, t] = table[sum(idx[b, :t+1] + 1) % vocab]: causal; every earlier token (pads too) matters."""

    vocab_size: int = VOCAB
    block_size: int = 64

    @nn.compact
    def __call__(self, idx: jax.Array, deterministic: bool = True) -> jax.Array:
        table = self.param("table", nn.initializers.normal(1.0), (self.vocab_size, self.vocab_size))
        return table[jnp.cumsum(idx + 1, axis=1) % self.vocab_size]


def table_params(table: np.ndarray) -> dict[str, Any]:
    """Params of ``TableLM``/``PositionLM``/``PrefixSumLM`` with the given table."""
    return {"table": jnp.asarray(table, dtype=jnp.float32)}


def random_table(rows: int, seed: int = 0) -> np.ndarray:
    """A reproducible table of logits."""
    return np.random.default_rng(seed).normal(size=(rows, VOCAB)).astype(np.float32)


def log_softmax(row: np.ndarray) -> np.ndarray:
    """Float64 log-softmax of one row of logits."""
    row = row.astype(np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def probs_row(chosen: dict[int, float]) -> np.ndarray:
    """Logits whose softmax gives ``chosen`` probabilities and spreads the rest evenly."""
    rest = (1.0 - sum(chosen.values())) / (VOCAB - len(chosen))
    probs = np.full(VOCAB, rest)
    for token, p in chosen.items():
        probs[token] = p
    return np.log(probs).astype(np.float32)


def greedy_table(successor: dict[str, str], default: str = "\n") -> np.ndarray:
    """A bigram table whose argmax after character ``a`` is ``successor[a]`` (else ``default``)."""
    table = np.zeros((VOCAB, VOCAB), dtype=np.float32)
    table[:, ord(default)] = 5.0
    for a, b in successor.items():
        table[ord(a), :] = 0.0
        table[ord(a), ord(b)] = 5.0
    return table


def register_toy_evaluation() -> None:
    """Register ``test_toy_ppl``: perplexity on two short documents."""
    EVALUATIONS["test_toy_ppl"] = lambda: PerplexityEvaluation(examples=TOY_DOCS)


def make_run(
    root: Path, table: np.ndarray, *, steps=(3, 7), boxed=False, tokenizer_meta=True, job="test/table_lm"
) -> Path:
    """A run directory in the trainer's layout: config.yaml, checkpoints/<step>/, tokenized data meta."""
    register_toy_evaluation()
    run = root / "runs" / "default" / "default" / "toy"
    run.mkdir(parents=True)
    config = {
        "job": job,
        "architecture": {"vocab_size": VOCAB, "block_size": 16},
        "eval": {"evaluations": ["test_toy_ppl"], "batch_size": 2},
        "training": {"data": [{"name": "toy_data", "rate": 1.0}], "steps": 10},
        "optimization": {"lr": 0.001},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if tokenizer_meta:
        (root / "data" / "toy_data").mkdir(parents=True)
        (root / "data" / "toy_data" / "meta.json").write_text(
            json.dumps({"tokenizer": ByteTokenizer().identity()})
        )
    manager = CheckpointManager(run / "checkpoints", async_save=False)
    for i, step in enumerate(steps):
        params = table_params(table + i)
        saved = {"table": {"value": params["table"]}} if boxed else params
        manager.save(
            step, {"params": saved, "opt_state": optax.adam(1e-3).init(params), "step": np.asarray(step)}
        )
    manager.close()
    return run
