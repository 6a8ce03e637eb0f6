"""Hugging Face checkpoints as theseus models: :class:`HFCompat` and :data:`LogicalAxes`.

::

    class MyHFModel(HFCompat):
        id: str = field("architecture/huggingface/model")   # a checkpoint folder (or a hub id)

        @property
        def sharding(self):                                # logical axis -> mesh axis
            return [(Axes.N_ATTN.value, Axis.SHARD), (Axes.N_EMBD_FF.value, Axis.SHARD), ...]

        @classmethod
        def axes(cls, name):                               # checkpoint parameter name -> logical axes
            return None                                    # None: the family's default mapping

The network runs natively in JAX/Flax: ``config.json`` and the safetensors weights are read
without transformers or torch and mapped onto the Llama family (Llama, Mistral, Qwen2,
Qwen3), GPT-2 or GPT-NeoX. Parameters keep the checkpoint's names and layouts, so
``axes(name)`` sees names such as ``model.layers.0.self_attn.q_proj.weight`` and returns the
logical axes of that tensor as stored (``[out, in]`` for a linear layer).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.base.axis import Axis
from theseus.config import field
from theseus.errors import TheseusError
from theseus.model.axes import Axes
from theseus.model.hf.architecture import Architecture, parse_architecture
from theseus.model.hf.axes import default_axes
from theseus.model.hf.checkpoint import HFCheckpoint, open_checkpoint
from theseus.model.hf.families import LOGITS
from theseus.model.hf.layers import Settings
from theseus.model.hf.load import pretrained_params
from theseus.model.module import Module, ShardingRules

LogicalAxes = tuple[Axes | str | None, ...]
"""Logical axis names of one parameter, one per dimension (``Axes`` members or their ``.value``)."""


class HFCompat(Module):
    """A causal language model defined by a Hugging Face checkpoint folder.

    ``__call__(idx[B, T]) -> logits[B, T, vocab]`` (float32) follows the native GPT's
    contract: ``positions``, ``mask`` (left padding) and ``decode`` (KV cache) included.
    :meth:`pretrained_params` reads the checkpoint's weights into any sharded layout;
    ``init`` gives random weights of the same shapes.
    """

    id: str = field(
        "architecture/huggingface/model",
        doc="Hugging Face checkpoint: a local folder (config.json, safetensors) or a hub id",
    )
    block_size: int = field(
        "architecture/block_size", default=256, doc="context length trained and evaluated at", ge=1
    )

    # ---- contract

    @property
    def sharding(self) -> ShardingRules:
        """Tensor parallel over ``shard``: attention heads, MLP width and vocabulary are split."""
        return [
            (Axes.VOCAB.value, Axis.SHARD),
            (Axes.N_ATTN.value, Axis.SHARD),
            (Axes.N_EMBD_FF.value, Axis.SHARD),
            (Axes.N_EMBD_OUT.value, Axis.SHARD),
            (Axes.N_EMBD.value, None),
            (Axes.BLOCK_SIZE.value, None),
            (Axes.HEAD_DIM.value, None),
        ]

    @classmethod
    def axes(cls, name: str) -> LogicalAxes | None:
        """Logical axes of the parameter named ``name``; ``None`` uses the family's default mapping."""
        return None

    @classmethod
    def logical_axes(cls, name: str, ndim: int) -> tuple[str | None, ...]:
        """:meth:`axes` (or the default) as plain names, checked against the parameter's rank."""
        given = cls.axes(name)
        found = given if given is not None else default_axes(name)
        if found is None:
            raise TheseusError(f"{cls.__name__}.axes has no logical axes for parameter {name}; return them for it")
        names = tuple(a.value if isinstance(a, Axes) else a for a in found)
        if len(names) != ndim:
            raise TheseusError(f"{cls.__name__}.axes({name!r}) gives {len(names)} axes for a {ndim}-d parameter")
        return names

    # ---- the checkpoint

    @property
    def checkpoint(self) -> HFCheckpoint:
        """The checkpoint folder :attr:`id` names (opened once per process)."""
        return open_checkpoint(self.id)

    @property
    def architecture(self) -> Architecture:
        """What the checkpoint's ``config.json`` says about the network."""
        return _architecture(self.checkpoint)

    @property
    def vocab_size(self) -> int:
        """Rows of the checkpoint's embedding."""
        return self.architecture.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int | None) -> None:
        raise TheseusError(f"{type(self).__name__}.vocab_size comes from the checkpoint's config.json")

    def pretrained_params(self, shardings: Any | None = None) -> Any:
        """The checkpoint's weights as this model's (unboxed) parameters, in ``param_dtype``.

        ``shardings`` (a tree of shardings shaped like the parameters) lays each tensor out
        on the devices directly; each device reads only its slice of the file.
        """
        return pretrained_params(self.checkpoint, self.abstract_params(), shardings)

    def abstract_params(self) -> Any:
        """The (unboxed) parameter tree as ``jax.ShapeDtypeStruct``\\ s; nothing is allocated."""
        return jax.eval_shape(
            lambda: nn.meta.unbox(self.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32))["params"])
        )

    # ---- cost

    def matmul_params(self) -> int:
        """Per layer q/k/v, output and MLP matrices, plus the LM head."""
        a = self.architecture
        attention = a.hidden_size * a.head_dim * (2 * a.n_heads + 2 * a.n_kv_heads)
        mlp = (3 if a.family == "llama" else 2) * a.hidden_size * a.intermediate_size
        return a.n_layers * (attention + mlp) + a.hidden_size * a.vocab_size

    def attention_flops_per_token(self, seq_len: int) -> float:
        """``12·L·H·Q·T`` over the full ``T x T`` (sliding windows are not credited)."""
        a = self.architecture
        return 12.0 * a.n_layers * a.n_heads * a.head_dim * seq_len

    def decoder(self, params: Any) -> tuple[HFCompat, Any]:
        """The model decodes as it is: its layers keep their KV caches in place."""
        return self, params

    # ---- forward

    @nn.compact
    def __call__(
        self,
        idx: jax.Array,
        *,
        deterministic: bool = True,
        positions: jax.Array | None = None,
        mask: jax.Array | None = None,
        decode: bool = False,
    ) -> jax.Array:
        """Logits ``float32[B, T, vocab]`` for ids ``idx[B, T]``.

        ``positions`` (``[T]`` or ``[B, T]``; default ``arange(T)``) are absolute positions;
        ``mask[B, T]`` marks real tokens (padding is never attended to); with ``decode`` keys
        and values go to the ``cache`` collection (see :meth:`Module.decoder`). Dropout is
        not applied: ``deterministic`` is accepted for the common contract.
        """
        arch = self.architecture
        length = idx.shape[-1]
        if positions is None:
            positions = jnp.arange(length, dtype=jnp.int32)
        if arch.family == "gpt2" and max(length, self.block_size) > arch.max_positions:
            raise TheseusError(
                f"{self.id} has {arch.max_positions} learned positions: architecture.block_size={self.block_size} "
                f"and inputs of {length} tokens must fit in them"
            )
        settings = Settings(arch, type(self).logical_axes, self.compute_dtype, self.weight_dtype, decode)
        logits = LOGITS[arch.family](settings, idx, positions, mask)
        return self.constrain(logits, (Axes.BATCH, Axes.BLOCK_SIZE, Axes.VOCAB))


@functools.lru_cache(maxsize=8)
def _architecture(checkpoint: HFCheckpoint) -> Architecture:
    return parse_architecture(checkpoint.config, str(checkpoint.path / "config.json"))


__all__ = ["HFCompat", "LogicalAxes"]
