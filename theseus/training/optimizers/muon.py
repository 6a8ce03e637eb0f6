"""``muon``: orthogonalised momentum for hidden matrices, AdamW for everything else.

Hidden weight matrices get optax's Muon step (``optax.contrib.scale_by_muon``: Nesterov
momentum whose update is replaced by the nearest semi-orthogonal matrix after a few
Newton-Schulz iterations), scaled by ``sqrt(max(1, fan_out / fan_in))``. A kernel is
``[..., in, out]``: leading axes (a scanned layer stack, fused q/k/v) are a batch of
matrices, each orthogonalised on its own. Embeddings, the LM head, norms and biases use
theseus's AdamW.

``optax.contrib.muon`` bundles the same Muon step with its own Adam branch, but that branch
is NAdam whenever Muon's momentum is Nesterov and it decays every non-matrix parameter
(no mask), so embeddings and norm scales would be decayed; theseus keeps its AdamW there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

from theseus.config import field
from theseus.training.optimizers.adamw import AdamWConfig, adamw_transform
from theseus.training.optimizers.base import is_decayed, path_names, scaled_lr, with_clipping
from theseus.training.schedules.base import DEFAULT_LR

HEAD_NAMES = ("lm_head",)
# a kernel's last two axes are (in, out); the axes before them are a batch of matrices
KERNEL_AXES = MuonDimensionNumbers(reduction_axis=-2, output_axis=-1)


@dataclass
class MuonConfig(AdamWConfig):
    """Muon's own learning rate and momentum; the AdamW keys drive the non-matrix parameters."""

    lr: float = field("optimization/lr", default=DEFAULT_LR, doc="peak learning rate", ge=0, changeable=True)
    muon_lr: float = field(
        "optimization/muon_lr",
        default=0.02,
        doc="peak learning rate of Muon matrices (follows the schedule)",
        ge=0,
        changeable=True,
    )
    muon_momentum: float = field(
        "optimization/muon_momentum", default=0.95, doc="Muon Nesterov momentum", ge=0, lt=1, changeable=True
    )
    ns_steps: int = field(
        "optimization/ns_steps", default=5, doc="Newton-Schulz iterations", ge=1,
        changeable=True,
    )


def _kernel_axes(updates: Any) -> Any:
    return jax.tree_util.tree_map(lambda _: KERNEL_AXES, updates)


def scale_by_width() -> optax.GradientTransformation:
    """Multiply each matrix update by ``sqrt(max(1, out / in))`` (its last two axes are ``in, out``)."""

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        scaled = jax.tree_util.tree_map(lambda u: u * max(1.0, u.shape[-1] / u.shape[-2]) ** 0.5, updates)
        return scaled, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def is_muon_matrix(path: Sequence[Any], leaf: Any) -> bool:
    """Hidden matrices: decayed weights (2+ dims, not embedding/norm/bias) outside the LM head."""
    return is_decayed(path, leaf) and not any(name in HEAD_NAMES for name in path_names(path))


def muon_labels(params: Any) -> Any:
    """``"muon"`` for hidden matrices, ``"adamw"`` for the rest."""
    return jax.tree_util.tree_map_with_path(lambda p, x: "muon" if is_muon_matrix(p, x) else "adamw", params)


def build(cfg: MuonConfig, lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Clip, then Muon on hidden matrices (lr scaled by ``muon_lr / lr``) and AdamW on the rest."""
    muon = optax.chain(
        scale_by_muon(
            ns_steps=cfg.ns_steps, beta=cfg.muon_momentum, nesterov=True, weight_dimension_numbers=_kernel_axes
        ),
        scale_by_width(),
        optax.add_decayed_weights(cfg.weight_decay),  # every Muon matrix is a decayed one
        optax.scale_by_learning_rate(scaled_lr(lr, cfg.muon_lr / cfg.lr)),
    )
    return with_clipping(cfg, optax.multi_transform({"muon": muon, "adamw": adamw_transform(cfg, lr)}, muon_labels))
