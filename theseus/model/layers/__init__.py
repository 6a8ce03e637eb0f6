"""Reusable layers: projections, norms, embeddings, rotary positions, attention, MLP, block."""

from theseus.model.layers.attention import AttentionKind, CausalSelfAttention, softmax_attention
from theseus.model.layers.block import TransformerBlock
from theseus.model.layers.embedding import Embedding
from theseus.model.layers.linear import Linear, logical_names
from theseus.model.layers.mlp import MLP, MLPKind
from theseus.model.layers.norm import Norm, NormKind
from theseus.model.layers.rope import apply_rope, rope_angles

__all__ = [
    "MLP",
    "AttentionKind",
    "CausalSelfAttention",
    "Embedding",
    "Linear",
    "MLPKind",
    "Norm",
    "NormKind",
    "TransformerBlock",
    "apply_rope",
    "logical_names",
    "rope_angles",
    "softmax_attention",
]
