"""What a checkpoint's ``config.json`` says about its network, read without transformers.

:func:`parse_architecture` turns the config of a supported ``model_type`` into an
:class:`Architecture`: the family of the network (``llama``, ``gpt2`` or ``gpt_neox``), its
sizes, and the variant switches (grouped-query attention, biases, q/k norms, tied head,
parallel residual, rotary fraction and scaling, sliding windows). Defaults for keys a
config leaves out are those of the reference implementation's config class of that type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from theseus.errors import TheseusError

Family = Literal["llama", "gpt2", "gpt_neox"]
FAMILIES: dict[str, Family] = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
}
ACTIVATIONS = ("silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")
ROPE_TYPES = ("default", "linear", "llama3", "yarn")


@dataclass(frozen=True)
class Rope:
    """Rotary positions: inverse frequencies of the rotated dims and a scale for cos/sin."""

    inv_freq: tuple[float, ...]
    attention_factor: float = 1.0

    @property
    def rotary_dim(self) -> int:
        """How many leading dims of each head are rotated."""
        return 2 * len(self.inv_freq)


@dataclass(frozen=True)
class Architecture:
    """Everything the network needs from ``config.json`` (hashable, so a module can hold it)."""

    model_type: str
    family: Family
    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_positions: int
    norm_eps: float
    activation: str
    tie_embeddings: bool
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    parallel_residual: bool = False
    attention_scale: float = 1.0
    rope: Rope | None = None
    sliding_windows: tuple[int | None, ...] = ()
    initializer_range: float = 0.02
    dtype: str = "float32"

    def window(self, layer: int) -> int | None:
        """The sliding attention window of ``layer`` (``None``: full causal attention)."""
        return self.sliding_windows[layer] if self.sliding_windows else None


def parse_architecture(config: Mapping[str, Any], where: str) -> Architecture:
    """The :class:`Architecture` of a checkpoint config (TheseusError for what theseus cannot run)."""
    model_type = str(config.get("model_type"))
    family = FAMILIES.get(model_type)
    if family is None:
        raise TheseusError(
            f"{where}: model_type {model_type!r} is not supported; theseus runs {', '.join(sorted(FAMILIES))}"
        )
    reader = _Reader(config, where)
    arch = {"llama": _llama, "gpt2": _gpt2, "gpt_neox": _gpt_neox}[family](reader, model_type)
    if arch.activation not in ACTIVATIONS:
        raise TheseusError(f"{where}: activation {arch.activation!r} is not supported ({', '.join(ACTIVATIONS)})")
    if arch.n_heads % arch.n_kv_heads:
        raise TheseusError(f"{where}: {arch.n_heads} attention heads do not split into {arch.n_kv_heads} kv groups")
    return arch


class _Reader:
    """Typed access to config keys with defaults, errors naming the file."""

    def __init__(self, config: Mapping[str, Any], where: str) -> None:
        self.config = config
        self.where = where

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        return default if value is None else value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TheseusError(f"{self.where}: {key} must be an integer, got {value!r}")
        return value

    def dtype(self) -> str:
        return str(self.get("dtype", self.get("torch_dtype", "float32")))


def _llama(c: _Reader, model_type: str) -> Architecture:
    hidden, heads = c.int("hidden_size"), c.int("num_attention_heads")
    head_dim = c.int("head_dim", 128 if model_type == "qwen3" else hidden // heads)
    layers = c.int("num_hidden_layers")
    bias = bool(c.get("attention_bias", False))
    return Architecture(
        model_type=model_type,
        family="llama",
        vocab_size=c.int("vocab_size"),
        hidden_size=hidden,
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=c.int("num_key_value_heads", heads),
        head_dim=head_dim,
        intermediate_size=c.int("intermediate_size"),
        max_positions=c.int("max_position_embeddings", 2048),
        norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        activation=str(c.get("hidden_act", "silu")),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        qkv_bias=True if model_type == "qwen2" else bias,
        out_bias=bias if model_type in ("llama", "qwen3") else False,
        mlp_bias=bool(c.get("mlp_bias", False)) if model_type == "llama" else False,
        qk_norm=model_type == "qwen3",
        attention_scale=head_dim**-0.5,
        rope=_rope(c, head_dim),
        sliding_windows=_windows(c, model_type, layers),
        initializer_range=float(c.get("initializer_range", 0.02)),
        dtype=c.dtype(),
    )


def _gpt2(c: _Reader, model_type: str) -> Architecture:
    hidden, heads = c.int("n_embd", 768), c.int("n_head", 12)
    if c.get("scale_attn_by_inverse_layer_idx", False):
        raise TheseusError(f"{c.where}: scale_attn_by_inverse_layer_idx=true is not supported")
    head_dim = hidden // heads
    return Architecture(
        model_type=model_type,
        family="gpt2",
        vocab_size=c.int("vocab_size", 50257),
        hidden_size=hidden,
        n_layers=c.int("n_layer", 12),
        n_heads=heads,
        n_kv_heads=heads,
        head_dim=head_dim,
        intermediate_size=c.int("n_inner", 4 * hidden),
        max_positions=c.int("n_positions", 1024),
        norm_eps=float(c.get("layer_norm_epsilon", 1e-5)),
        activation=str(c.get("activation_function", "gelu_new")),
        tie_embeddings=True,
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        attention_scale=head_dim**-0.5 if c.get("scale_attn_weights", True) else 1.0,
        initializer_range=float(c.get("initializer_range", 0.02)),
        dtype=c.dtype(),
    )


def _gpt_neox(c: _Reader, model_type: str) -> Architecture:
    hidden, heads = c.int("hidden_size"), c.int("num_attention_heads")
    head_dim = hidden // heads
    bias = bool(c.get("attention_bias", True))
    return Architecture(
        model_type=model_type,
        family="gpt_neox",
        vocab_size=c.int("vocab_size"),
        hidden_size=hidden,
        n_layers=c.int("num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=heads,
        head_dim=head_dim,
        intermediate_size=c.int("intermediate_size"),
        max_positions=c.int("max_position_embeddings", 2048),
        norm_eps=float(c.get("layer_norm_eps", 1e-5)),
        activation=str(c.get("hidden_act", "gelu")),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=True,
        parallel_residual=bool(c.get("use_parallel_residual", True)),
        attention_scale=head_dim**-0.5,
        rope=_rope(c, head_dim, theta_key="rotary_emb_base", fraction_key="rotary_pct", fraction=0.25),
        initializer_range=float(c.get("initializer_range", 0.02)),
        dtype=c.dtype(),
    )


def _windows(c: _Reader, model_type: str, layers: int) -> tuple[int | None, ...]:
    """Per layer sliding window, as the config's ``layer_types`` (or the type's older rule) says."""
    window = c.get("sliding_window")
    if model_type == "mistral":
        return (int(window),) * layers if window else ()
    if model_type not in ("qwen2", "qwen3") or not window:
        return ()
    types = c.get("layer_types")
    if types is None:
        if not c.get("use_sliding_window", False):
            return ()
        first = c.int("max_window_layers", 28)
        types = ["sliding_attention" if i >= first else "full_attention" for i in range(layers)]
    if len(types) != layers:
        raise TheseusError(f"{c.where}: layer_types lists {len(types)} layers, not {layers}")
    if "sliding_attention" in types and not c.get("use_sliding_window", True):
        return ()
    return tuple(int(window) if t == "sliding_attention" else None for t in types)


def _rope(
    c: _Reader, head_dim: int, *, theta_key: str = "rope_theta", fraction_key: str = "partial_rotary_factor",
    fraction: float = 1.0,
) -> Rope:
    """Inverse frequencies and attention factor from ``rope_parameters`` (or the older ``rope_scaling``)."""
    params = dict(c.get("rope_parameters") or c.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", c.get(theta_key, c.get("rope_theta", 10000.0))))
    share = float(params.get("partial_rotary_factor", c.get(fraction_key, fraction)))
    kind = str(params.get("rope_type", params.get("type", "default")))
    if kind not in ROPE_TYPES:
        raise TheseusError(f"{c.where}: rope type {kind!r} is not supported ({', '.join(ROPE_TYPES)})")
    dim = int(head_dim * share)
    inv_freq = (1.0 / theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim)).astype(np.float32)
    factor = 1.0
    if kind == "linear":
        inv_freq = inv_freq / np.float32(params["factor"])
    elif kind == "llama3":
        inv_freq = _llama3(inv_freq, params, c.int("max_position_embeddings", 2048))
    elif kind == "yarn":
        inv_freq, factor = _yarn(dim, theta, params, c.int("max_position_embeddings", 2048))
    return Rope(tuple(float(f) for f in inv_freq.astype(np.float32)), float(factor))


def _llama3(inv_freq: np.ndarray, params: Mapping[str, Any], max_positions: int) -> np.ndarray:
    """Llama 3.1 scaling: long wavelengths slowed by ``factor``, short ones kept, a smooth ramp between."""
    factor = float(params["factor"])
    low, high = float(params["low_freq_factor"]), float(params["high_freq_factor"])
    context = float(params.get("original_max_position_embeddings") or max_positions)
    wavelength = 2 * math.pi / inv_freq
    smooth = (context / wavelength - low) / (high - low)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = np.where(wavelength > context / low, inv_freq / factor, inv_freq)
    middle = (wavelength >= context / high) & (wavelength <= context / low)
    return np.where(middle, blended, scaled).astype(np.float32)


def _yarn(dim: int, theta: float, params: Mapping[str, Any], max_positions: int) -> tuple[np.ndarray, float]:
    """YaRN: interpolate the slow dims, keep the fast ones, ramp between; scale attention by ``attention_factor``."""
    context = float(params.get("original_max_position_embeddings") or max_positions)
    factor = float(params.get("factor") or max_positions / context)

    def mscale(scale: float, weight: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * weight * math.log(scale) + 1.0

    attention = params.get("attention_factor")
    if attention is None:
        if params.get("mscale") and params.get("mscale_all_dim"):
            attention = mscale(factor, float(params["mscale"])) / mscale(factor, float(params["mscale_all_dim"]))
        else:
            attention = mscale(factor)
    fast, slow = float(params.get("beta_fast") or 32), float(params.get("beta_slow") or 1)

    def dim_of(rotations: float) -> float:
        return dim * math.log(context / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    lo, hi = dim_of(fast), dim_of(slow)
    if params.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - lo) / (hi - lo), 0, 1)
    keep = 1 - ramp
    freqs = theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim)
    inv_freq = (1.0 / (factor * freqs)) * (1 - keep) + (1.0 / freqs) * keep
    return inv_freq.astype(np.float32), float(attention)
