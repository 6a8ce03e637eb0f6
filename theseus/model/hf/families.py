"""The three network families, with the module names of their checkpoints.

==========  =====================================================================  ==========================
family      model types                                                             top-level names
==========  =====================================================================  ==========================
llama       llama, mistral, qwen2, qwen3 (GQA, biases, q/k norm, sliding window)    ``model``, ``lm_head``
gpt2        gpt2 (learned positions, LayerNorm, fused ``c_attn``, tied head)         ``transformer``
gpt_neox    gpt_neox (partial rotary, parallel residual, head-interleaved q/k/v)     ``gpt_neox``, ``embed_out``
==========  =====================================================================  ==========================

Each ``*_logits`` function is called inside :class:`~theseus.model.huggingface.HFCompat`'s
compact ``__call__`` and creates its top-level modules there.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from theseus.model.hf.layers import (
    HFEmbedding,
    HFLinear,
    HFNorm,
    Layers,
    Settings,
    activation,
    attend,
    logits_of,
)

Logits = Callable[[Settings, jax.Array, jax.Array, "jax.Array | None"], jax.Array]


# --------------------------------------------------------------------------- llama, mistral, qwen2, qwen3


class LlamaAttention(nn.Module):
    """``q_proj``/``k_proj``/``v_proj`` (optional ``q_norm``/``k_norm``) → attention → ``o_proj``."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """Self-attention over ``x[B, T, D]``."""
        a, s = self.s.arch, self.s
        batch, length, _ = x.shape
        q = HFLinear(a.n_heads * a.head_dim, s, a.qkv_bias, name="q_proj")(x)
        k = HFLinear(a.n_kv_heads * a.head_dim, s, a.qkv_bias, name="k_proj")(x)
        v = HFLinear(a.n_kv_heads * a.head_dim, s, a.qkv_bias, name="v_proj")(x)
        q = q.reshape(batch, length, a.n_heads, a.head_dim)
        k = k.reshape(batch, length, a.n_kv_heads, a.head_dim)
        v = v.reshape(batch, length, a.n_kv_heads, a.head_dim)
        if a.qk_norm:
            q, k = HFNorm(s, name="q_norm")(q), HFNorm(s, name="k_norm")(k)
        y = attend(self, q, k, v, positions, mask, s, self.layer)
        return HFLinear(a.hidden_size, s, a.out_bias, name="o_proj")(y)


class LlamaMLP(nn.Module):
    """``down_proj(act(gate_proj(x)) * up_proj(x))``."""

    s: Settings

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map ``x[..., D]`` to the same shape."""
        a, s = self.s.arch, self.s
        gate = HFLinear(a.intermediate_size, s, a.mlp_bias, name="gate_proj")(x)
        up = HFLinear(a.intermediate_size, s, a.mlp_bias, name="up_proj")(x)
        return HFLinear(a.hidden_size, s, a.mlp_bias, name="down_proj")(activation(a.activation)(gate) * up)


class LlamaLayer(nn.Module):
    """Pre-norm decoder layer: ``input_layernorm`` → ``self_attn``, ``post_attention_layernorm`` → ``mlp``."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """One layer on the residual stream."""
        s = self.s
        x = x + LlamaAttention(s, self.layer, name="self_attn")(HFNorm(s, name="input_layernorm")(x), positions, mask)
        return x + LlamaMLP(s, name="mlp")(HFNorm(s, name="post_attention_layernorm")(x))


class LlamaModel(nn.Module):
    """``embed_tokens`` → ``layers`` → ``norm``; returns the hidden states and the embedding table."""

    s: Settings

    @nn.compact
    def __call__(self, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Final hidden states ``[B, T, D]`` and the token embedding (for a tied head)."""
        embed = HFEmbedding(self.s.arch.vocab_size, self.s, name="embed_tokens")
        x = Layers(LlamaLayer, self.s, name="layers")(embed(idx), positions, mask)
        return HFNorm(self.s, name="norm")(x), embed.weight


def llama_logits(s: Settings, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits of the Llama family: ``model`` then ``lm_head`` (or the tied embedding)."""
    hidden, table = LlamaModel(s, name="model")(idx, positions, mask)
    if s.arch.tie_embeddings:
        return logits_of(hidden, table.astype(s.dtype))
    return HFLinear(s.arch.vocab_size, s, name="lm_head")(hidden).astype(jnp.float32)


# --------------------------------------------------------------------------- gpt2 and gpt_neox


class TwoLayerMLP(nn.Module):
    """``down(act(up(x)))`` with biases: GPT-2's ``c_fc``/``c_proj`` (Conv1D), GPT-NeoX's ``dense_h_to_4h``/``dense_4h_to_h``."""

    s: Settings
    up: str
    down: str
    conv1d: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map ``x[..., D]`` to the same shape."""
        a, s = self.s.arch, self.s
        h = HFLinear(a.intermediate_size, s, True, conv1d=self.conv1d, name=self.up)(x)
        return HFLinear(a.hidden_size, s, True, conv1d=self.conv1d, name=self.down)(activation(a.activation)(h))



class GPT2Attention(nn.Module):
    """Fused ``c_attn`` (``[D, 3D]``: all q, then all k, then all v) → attention → ``c_proj``."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """Self-attention over ``x[B, T, D]``."""
        a, s = self.s.arch, self.s
        batch, length, _ = x.shape
        qkv = HFLinear(3 * a.hidden_size, s, True, conv1d=True, name="c_attn")(x)
        q, k, v = (t.reshape(batch, length, a.n_heads, a.head_dim) for t in jnp.split(qkv, 3, axis=-1))
        y = attend(self, q, k, v, positions, mask, s, self.layer)
        return HFLinear(a.hidden_size, s, True, conv1d=True, name="c_proj")(y)


class GPT2Block(nn.Module):
    """``ln_1`` → ``attn``, ``ln_2`` → ``mlp``, each added to the residual stream."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """One block on the residual stream."""
        s = self.s
        x = x + GPT2Attention(s, self.layer, name="attn")(HFNorm(s, "layer", name="ln_1")(x), positions, mask)
        mlp = TwoLayerMLP(s, "c_fc", "c_proj", conv1d=True, name="mlp")
        return x + mlp(HFNorm(s, "layer", name="ln_2")(x))


class GPT2Model(nn.Module):
    """``wte`` + ``wpe`` → blocks ``h`` → ``ln_f``; returns the hidden states and ``wte``."""

    s: Settings

    @nn.compact
    def __call__(self, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Final hidden states and the token embedding (the head is always tied)."""
        s = self.s
        tokens = HFEmbedding(s.arch.vocab_size, s, name="wte")
        x = tokens(idx) + HFEmbedding(s.arch.max_positions, s, name="wpe")(positions)
        x = Layers(GPT2Block, s, name="h")(x, positions, mask)
        return HFNorm(s, "layer", name="ln_f")(x), tokens.weight


def gpt2_logits(s: Settings, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits of GPT-2: ``transformer`` with the head tied to ``wte``."""
    hidden, table = GPT2Model(s, name="transformer")(idx, positions, mask)
    return logits_of(hidden, table.astype(s.dtype))


# --------------------------------------------------------------------------- gpt_neox


class NeoXAttention(nn.Module):
    """``query_key_value`` (per head: q, k, v) → partial rotary attention → ``dense``."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """Self-attention over ``x[B, T, D]``."""
        a, s = self.s.arch, self.s
        batch, length, _ = x.shape
        qkv = HFLinear(3 * a.n_heads * a.head_dim, s, a.qkv_bias, name="query_key_value")(x)
        q, k, v = jnp.split(qkv.reshape(batch, length, a.n_heads, 3 * a.head_dim), 3, axis=-1)
        y = attend(self, q, k, v, positions, mask, s, self.layer)
        return HFLinear(a.hidden_size, s, a.out_bias, name="dense")(y)


class NeoXLayer(nn.Module):
    """Attention and MLP on their own LayerNorms, summed in parallel (or one after the other)."""

    s: Settings
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """One layer on the residual stream."""
        s = self.s
        attn = NeoXAttention(s, self.layer, name="attention")(
            HFNorm(s, "layer", name="input_layernorm")(x), positions, mask
        )
        post_norm = HFNorm(s, "layer", name="post_attention_layernorm")
        mlp = TwoLayerMLP(s, "dense_h_to_4h", "dense_4h_to_h", name="mlp")
        if s.arch.parallel_residual:
            return x + attn + mlp(post_norm(x))
        x = x + attn
        return x + mlp(post_norm(x))


class NeoXModel(nn.Module):
    """``embed_in`` → ``layers`` → ``final_layer_norm``; returns the hidden states and ``embed_in``."""

    s: Settings

    @nn.compact
    def __call__(self, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Final hidden states and the token embedding (for a tied head)."""
        embed = HFEmbedding(self.s.arch.vocab_size, self.s, name="embed_in")
        x = Layers(NeoXLayer, self.s, name="layers")(embed(idx), positions, mask)
        return HFNorm(self.s, "layer", name="final_layer_norm")(x), embed.weight


def neox_logits(s: Settings, idx: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits of GPT-NeoX: ``gpt_neox`` then ``embed_out`` (or the tied embedding)."""
    hidden, table = NeoXModel(s, name="gpt_neox")(idx, positions, mask)
    if s.arch.tie_embeddings:
        return logits_of(hidden, table.astype(s.dtype))
    return HFLinear(s.arch.vocab_size, s, name="embed_out")(hidden).astype(jnp.float32)


LOGITS: dict[str, Logits] = {"llama": llama_logits, "gpt2": gpt2_logits, "gpt_neox": neox_logits}
