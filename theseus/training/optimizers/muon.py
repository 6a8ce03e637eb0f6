"""``muon``: orthogonalised momentum for hidden matrices, AdamW for everything else.

Hidden weight matrices get Nesterov momentum whose update is replaced by the nearest
semi-orthogonal matrix (a few Newton-Schulz iterations), scaled by
``sqrt(max(1, rows / cols))``. A parameter with more than two dimensions is a batch of
matrices over its last two axes (a scanned layer stack, fused q/k/v), each
orthogonalised on its own. Embeddings, the LM head, norms and biases use AdamW.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from theseus.config import field
from theseus.training.optimizers.adamw import AdamWConfig, adamw_transform
from theseus.training.optimizers.base import is_decayed, path_names, scaled_lr, with_clipping
from theseus.training.schedules.base import DEFAULT_LR

HEAD_NAMES = ("lm_head",)
# quintic Newton-Schulz coefficients tuned to push singular values towards 1 in few steps
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


@dataclass
class MuonConfig(AdamWConfig):
    """Muon's own learning rate and momentum; the AdamW keys drive the non-matrix parameters."""

    lr: float = field("optimization/lr", default=DEFAULT_LR, doc="peak learning rate", ge=0)
    muon_lr: float = field(
        "optimization/muon_lr",
        default=0.02,
        doc="peak learning rate of Muon matrices (follows the schedule)",
        ge=0,
    )
    muon_momentum: float = field(
        "optimization/muon_momentum", default=0.95, doc="Muon Nesterov momentum", ge=0, lt=1
    )
    ns_steps: int = field("optimization/ns_steps", default=5, doc="Newton-Schulz iterations", ge=1)


def orthogonalize(update: jax.Array, steps: int = 5) -> jax.Array:
    """Approximately ``U @ V.T`` of the SVD of each matrix in the last two axes of ``update``."""
    x = update.astype(jnp.float32)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = jnp.swapaxes(x, -1, -2)
    x = x / (jnp.linalg.norm(x, axis=(-2, -1), keepdims=True) + 1e-7)
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        gram = x @ jnp.swapaxes(x, -1, -2)
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = jnp.swapaxes(x, -1, -2)
    rows, cols = update.shape[-2:]
    return (x * max(1.0, rows / cols) ** 0.5).astype(update.dtype)


def scale_by_orthogonalization(steps: int = 5) -> optax.GradientTransformation:
    """A stateless transform replacing each matrix update by its orthogonalised version."""

    def init(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        return jax.tree_util.tree_map(lambda u: orthogonalize(u, steps), updates), state

    return optax.GradientTransformation(init, update)


def is_muon_matrix(path: Sequence[Any], leaf: Any) -> bool:
    """Hidden matrices: decayed weights (2+ dims, not embedding/norm/bias) outside the LM head."""
    return is_decayed(path, leaf) and not any(name in HEAD_NAMES for name in path_names(path))


def muon_labels(params: Any) -> Any:
    """``"muon"`` for hidden matrices, ``"adamw"`` for the rest."""
    return jax.tree_util.tree_map_with_path(lambda p, x: "muon" if is_muon_matrix(p, x) else "adamw", params)


def build(cfg: MuonConfig, lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Clip, then Muon on hidden matrices (lr scaled by ``muon_lr / lr``) and AdamW on the rest."""
    muon = optax.chain(
        optax.trace(decay=cfg.muon_momentum, nesterov=True),
        scale_by_orthogonalization(cfg.ns_steps),
        optax.add_decayed_weights(cfg.weight_decay),  # every Muon matrix is a decayed one
        optax.scale_by_learning_rate(scaled_lr(lr, cfg.muon_lr / cfg.lr)),
    )
    return with_clipping(cfg, optax.multi_transform({"muon": muon, "adamw": adamw_transform(cfg, lr)}, muon_labels))
