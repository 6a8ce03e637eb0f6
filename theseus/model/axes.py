"""Logical axis names that parameters and activations are annotated with.

A model's ``sharding`` rules map these names onto the physical mesh axes of
:class:`theseus.base.axis.Axis` (singular: ``batch`` and ``shard``); the names themselves
say nothing about devices. ``Axes.BATCH`` (``"activation_batch"``) is deliberately not
``Axis.BATCH`` (``"batch"``): logical and physical names never coincide, and the trainer adds
the rule that maps one onto the other unless a model gives its own.
"""

from __future__ import annotations

import enum


class Axes(enum.Enum):
    """Logical axis names; ``.value`` is the string stored in parameter metadata."""

    BATCH = "activation_batch"  # rows of a batch (activations only)
    BLOCK_SIZE = "block_size"  # positions in a sequence
    VOCAB = "vocab"  # token ids / logits
    N_EMBD = "n_embd"  # the residual stream width
    N_EMBD_FF = "n_embd_ff"  # hidden width of the MLP
    N_EMBD_OUT = "n_embd_out"  # output width of a projection that is sharded (free for other models)
    N_ATTN = "n_attn"  # attention width: heads * head_dim, or heads alone
    HEAD_DIM = "head_dim"  # width of one attention head
    N_LAYERS = "n_layers"  # the stacked layer axis of a scanned model
    FUSED = "fused"  # a small axis of stacked projections (q/k/v, gate/up)
