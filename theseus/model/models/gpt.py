"""GPT: a decoder-only, pre-norm transformer language model.

Layers can be scanned (one compiled layer body whatever the depth) and rematerialised
with a named policy. Parameters of a scanned model live under ``blocks`` with a leading
layer axis; an unscanned model has ``block_0`` … ``block_{L-1}``.
:func:`stack_layers` and :func:`unstack_layers` convert between the two layouts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.base.axis import Axis
from theseus.config import field
from theseus.errors import ConfigError, TheseusError
from theseus.model.axes import Axes
from theseus.model.layers import AttentionKind, Embedding, Linear, MLPKind, Norm, NormKind, TransformerBlock
from theseus.model.layers.attention import ATTENTION_KINDS
from theseus.model.module import Module, ShardingRules

RematPolicy = Literal["none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable"]
REMAT_POLICIES: dict[str, Callable[..., bool] | None] = {
    "full": None,  # save nothing but the layer input
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
UNROLL_UP_TO = 8  # layers a scanned model unrolls when scan_unroll is 0
SCANNED = "blocks"
UNSCANNED = "block_{}"


class GPT(Module):
    """Decoder-only transformer: token embedding → L pre-norm blocks → norm → LM head.

    ``__call__(idx[B, T]) -> logits[B, T, vocab_size]`` (float32). Positions are rotary
    (default) or a learned table; the MLP is GELU or SwiGLU; the LM head can share the
    token embedding. Tensor parallelism splits attention heads, the MLP hidden width and
    the vocabulary over the ``shard`` mesh axis.
    """

    n_layers: int = field("architecture/n_layers", default=4, doc="number of transformer blocks", ge=1)
    n_embd: int = field("architecture/n_embd", default=256, doc="width of the residual stream", ge=1)
    n_head: int = field("architecture/n_head", default=4, doc="attention heads (must divide n_embd)", ge=1)
    block_size: int = field("architecture/block_size", default=256, doc="training context length", ge=1)
    vocab_size: int | None = field(
        "architecture/vocab_size",
        default=None,
        doc="rows of the token embedding; None: the training data's vocabulary rounded up to a multiple of 64",
        ge=1,
    )
    mlp: MLPKind = field("architecture/mlp", default="gelu", doc="gelu (2 matrices) or swiglu (3)")
    n_embd_ff: int | None = field(
        "architecture/n_embd_ff", default=None,
        doc="MLP hidden width; None: 4*n_embd for gelu, 8/3*n_embd rounded up to 64 for swiglu",
        ge=1,
    )
    position: Literal["rope", "learned"] = field(
        "architecture/position", default="rope", doc="rotary positions or a learned table"
    )
    rope_theta: float = field("architecture/rope_theta", default=10000.0, doc="RoPE base", gt=0)
    tie_embeddings: bool = field(
        "architecture/tie_embeddings", default=True, doc="LM head reuses the token embedding"
    )
    dropout: float = field(
        "architecture/dropout", default=0.0, doc="dropout on embeddings and residual branches", ge=0, lt=1
    )
    bias: bool = field("architecture/bias", default=False, doc="biases in projections and LayerNorm")
    norm: NormKind = field("architecture/norm", default="layernorm", doc="layernorm or rmsnorm")
    norm_eps: float = field("architecture/norm_eps", default=1e-5, doc="epsilon of the norms", gt=0)
    init_std: float = field(
        "architecture/init_std", default=0.02,
        doc="std of weight init; output projections use init_std/sqrt(2*n_layers)",
        ge=0,
    )
    scan_layers: bool = field(
        "architecture/scan_layers", default=True, doc="stack the layers' parameters and scan over them"
    )
    scan_unroll: int = field(
        "architecture/scan_unroll", default=0,
        doc="layers per scan iteration; 0: all of them (no loop, faster steps) up to 8 layers without remat, else 1 "
        "(compile time flat in depth)",
        changeable=True,
    )
    attention: AttentionKind = field(
        "architecture/attention", default="auto",
        doc="attention implementation: auto (cudnn on NVIDIA GPUs in bf16/fp16, else einsum), einsum, xla, cudnn",
        changeable=True,
    )
    remat: RematPolicy = field(
        "architecture/remat", default="none",
        doc="recompute activations in backward: none, full, dots_saveable, dots_with_no_batch_dims_saveable",
        changeable=True,
    )

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise ConfigError(f"architecture.n_layers must be at least 1, got {self.n_layers}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"architecture.n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(f"rotary positions need an even head dim, got {self.n_embd // self.n_head}")
        if self.remat != "none" and self.remat not in REMAT_POLICIES:
            raise ConfigError(f"architecture.remat={self.remat!r} is not one of none, {', '.join(REMAT_POLICIES)}")
        if self.scan_unroll < 0:
            raise ConfigError(f"architecture.scan_unroll must be 0 (all layers) or positive, got {self.scan_unroll}")
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(
                f"architecture.attention={self.attention!r} is not one of {', '.join(ATTENTION_KINDS)}"
            )
        super().__post_init__()

    # ---- contract

    @property
    def sharding(self) -> ShardingRules:
        """Tensor parallel over ``shard``: vocabulary, attention heads and MLP width are split."""
        return [
            (Axes.VOCAB.value, Axis.SHARD),
            (Axes.N_ATTN.value, Axis.SHARD),
            (Axes.N_EMBD_FF.value, Axis.SHARD),
            (Axes.N_EMBD.value, None),
            (Axes.BLOCK_SIZE.value, None),
            (Axes.HEAD_DIM.value, None),
            (Axes.N_LAYERS.value, None),
            (Axes.FUSED.value, None),
        ]

    @property
    def ff_width(self) -> int:
        """The MLP hidden width actually used."""
        if self.n_embd_ff:
            return self.n_embd_ff
        if self.mlp == "swiglu":
            return -(-8 * self.n_embd // 3 // 64) * 64
        return 4 * self.n_embd

    @property
    def vocab(self) -> int:
        """``vocab_size``, which must be set by now (a trainer fills it in from its data)."""
        if self.vocab_size is None:
            raise ConfigError("architecture.vocab_size is not set: give it, or train on tokenized data to fill it in")
        return int(self.vocab_size)

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head

    def matmul_params(self) -> int:
        """Per layer q/k/v, output, and MLP matrices, plus the LM head (tied or not)."""
        d = self.n_embd
        mlp_matrices = 3 if self.mlp == "swiglu" else 2
        per_layer = 3 * d * d + d * d + mlp_matrices * d * self.ff_width
        return self.n_layers * per_layer + d * self.vocab

    def attention_flops_per_token(self, seq_len: int) -> float:
        """``12·L·H·Q·T``: QKᵀ and AV, forward and backward, over the full (unmasked) ``T x T``."""
        return 12.0 * self.n_layers * self.n_head * self.head_dim * seq_len

    def activation_bytes(self, batch: int, seq_len: int) -> float:
        """What the backward pass needs kept, at the least: per layer the block's inputs, projections,
        MLP hidden state and the ``H x T x T`` attention weights (theseus attends with XLA, which
        materialises them), or with ``remat`` only each layer's input plus one layer in full; and
        the float32 logits.
        """
        width = jnp.dtype(self.compute_dtype).itemsize
        per_layer = (7 * self.n_embd + 2 * self.ff_width + self.n_head * seq_len) * width
        kept = self.n_layers * per_layer if self.remat == "none" else self.n_layers * self.n_embd * width + per_layer
        return float(batch) * seq_len * (kept + 4 * self.vocab)

    def decoder(self, params: Any) -> tuple[GPT, Any]:
        """Decode with unrolled layers: a scanned GPT becomes its unrolled twin, parameters unstacked.

        A scanned layer stack passes each layer's cache through the scan as a copy at every
        step, while unrolled layers update their caches in place. Inside ``jit`` the
        unstacking is free.
        """
        if self.scan_layers:
            return self.clone(scan_layers=False), unstack_layers(params)
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
        """Logits ``float32[B, T, vocab_size]`` for token ids ``idx[B, T]``.

        ``positions`` (``[T]`` or per row ``[B, T]``; default ``arange(T)``) are the
        absolute positions of the tokens. ``mask[B, T]`` (default: all True) marks real
        tokens; padding is never attended to, so left-padded rows give the logits they would
        alone when their positions start at 0 at their first real token. With ``decode``
        the keys and values are appended to the ``cache`` collection (apply with
        ``mutable=["cache"]``) and ``idx`` attends over everything cached before it: see
        :func:`theseus.inference.kv_cache.init_cache`. Dropout is active only when
        ``deterministic`` is False (needs a ``dropout`` rng).
        """
        length = idx.shape[-1]
        if self.position == "learned" and length > self.block_size:
            raise TheseusError(
                f"a sequence of {length} tokens is longer than architecture.block_size={self.block_size}, "
                "which a GPT with learned positions cannot exceed; use a context of at most that many tokens"
            )
        if positions is None:
            positions = jnp.arange(length, dtype=jnp.int32)
        dtype, param_dtype = self.compute_dtype, self.weight_dtype
        tokens = Embedding(
            self.vocab, self.n_embd, init_std=self.init_std, dtype=dtype, param_dtype=param_dtype,
            name="token_embedding",
        )
        x = tokens(idx)
        if self.position == "learned":
            x = x + Embedding(
                self.block_size, self.n_embd, row_axis=Axes.BLOCK_SIZE, init_std=self.init_std, dtype=dtype,
                param_dtype=param_dtype, name="position_embedding",
            )(positions)
        x = nn.Dropout(self.dropout, deterministic=deterministic)(x)
        x = self._blocks(x, positions, mask, deterministic, decode)
        x = Norm(self.norm, self.norm_eps, self.bias, dtype, param_dtype, name="final_norm")(x)
        if self.tie_embeddings:
            logits = tokens.attend(x)
        else:
            logits = Linear(
                self.vocab, Axes.N_EMBD, Axes.VOCAB, init_std=self.init_std, dtype=dtype,
                param_dtype=param_dtype, name="lm_head",
            )(x).astype(jnp.float32)
        return self.constrain(logits, (Axes.BATCH, Axes.BLOCK_SIZE, Axes.VOCAB))

    @property
    def layers_per_iteration(self) -> int:
        """How many layers one iteration of the layer scan runs.

        ``scan_unroll`` when set. Otherwise all of them for up to :data:`UNROLL_UP_TO` layers
        (no loop: no per-layer copies into zero-filled stacked buffers), else 1 (compile time
        stays flat in depth; unrolled, it grows by about half a second per layer on a
        2-core CPU). With ``remat`` also 1: only a loop makes XLA recompute one layer at a
        time.
        """
        if self.scan_unroll:
            return min(self.scan_unroll, self.n_layers)
        return self.n_layers if self.remat == "none" and self.n_layers <= UNROLL_UP_TO else 1

    def _blocks(
        self, x: jax.Array, positions: jax.Array, mask: jax.Array | None, deterministic: bool, decode: bool
    ) -> jax.Array:
        block: Any = TransformerBlock
        looped = self.scan_layers and self.layers_per_iteration < self.n_layers
        if self.remat != "none" and not decode:
            # inside a loop XLA cannot merge the recomputation with the forward; unrolled it could
            block = nn.remat(block, policy=REMAT_POLICIES[self.remat], prevent_cse=not looped)
        args = (positions,) if mask is None else (positions, mask)
        settings = {
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_embd_ff": self.ff_width,
            "mlp": self.mlp,
            "norm": self.norm,
            "norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta if self.position == "rope" else None,
            "use_bias": self.bias,
            "dropout": self.dropout,
            "deterministic": deterministic,
            "decode": decode,
            "init_std": self.init_std,
            "out_std": self.init_std / (2 * self.n_layers) ** 0.5,
            "dtype": self.compute_dtype,
            "param_dtype": self.weight_dtype,
            "attention": self.attention,
        }
        if self.scan_layers:
            stack = nn.scan(
                block,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,) * len(args),
                length=self.n_layers,
                unroll=self.layers_per_iteration,
                metadata_params={nn.PARTITION_NAME: Axes.N_LAYERS.value},
            )
            x, _ = stack(**settings, name=SCANNED)(x, *args)
            return x
        for i in range(self.n_layers):
            x, _ = block(**settings, name=UNSCANNED.format(i))(x, *args)
        return x


def stack_layers(params: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """Turn unscanned parameters (``block_i``) into the scanned layout (``blocks``, layer axis first)."""
    layers = [params[UNSCANNED.format(i)] for i in range(n_layers)]
    out = {k: v for k, v in params.items() if not k.startswith("block_")}
    out[SCANNED] = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *layers)
    return out


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
    """Turn scanned parameters (``blocks``) into the unscanned layout (``block_0`` …)."""
    stacked = params[SCANNED]
    n_layers = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    out = {k: v for k, v in params.items() if k != SCANNED}
    for i in range(n_layers):
        out[UNSCANNED.format(i)] = jax.tree_util.tree_map(lambda x, i=i: x[i], stacked)
    return out


__all__ = ["GPT", "REMAT_POLICIES", "stack_layers", "unstack_layers"]
