"""The native GPT as a Hugging Face checkpoint, when its architecture is one transformers has.

=================================================  ======================  ==============
GPT settings                                       transformers class      model_type
=================================================  ======================  ==============
``position=rope``, ``norm=layernorm``, ``gelu``     GPTNeoXForCausalLM      gpt_neox
``position=rope``, ``norm=rmsnorm``, ``swiglu``     LlamaForCausalLM        llama
``position=learned``, ``layernorm``, ``gelu``, tied GPT2LMHeadModel         gpt2
=================================================  ======================  ==============

GPT-NeoX is used sequentially (``use_parallel_residual=false``) with full rotary dims; the
biases a GPT without ``architecture.bias`` lacks but the target class always has are
written as zeros, which changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theseus.errors import TheseusError
from theseus.model.models.gpt import GPT, unstack_layers

Tensors = dict[str, np.ndarray]


def gpt_to_hf(model: GPT, params: Any) -> tuple[dict[str, Any], Tensors]:
    """``(config.json, tensors)`` of a native GPT's parameters; TheseusError when no class matches."""
    tree = unstack_layers(params) if model.scan_layers else params
    tree = _numpy(tree)
    if model.position == "rope" and model.norm == "layernorm" and model.mlp == "gelu":
        return _neox(model, tree)
    if model.position == "rope" and model.norm == "rmsnorm" and model.mlp == "swiglu":
        return _llama(model, tree)
    if model.position == "learned" and model.norm == "layernorm" and model.mlp == "gelu" and model.tie_embeddings:
        return _gpt2(model, tree)
    raise TheseusError(
        f"no transformers class has this GPT's architecture (position={model.position}, norm={model.norm}, "
        f"mlp={model.mlp}, tie_embeddings={model.tie_embeddings}); exportable: rope+layernorm+gelu (GPT-NeoX), "
        "rope+rmsnorm+swiglu (Llama), learned+layernorm+gelu tied (GPT-2)"
    )


def _numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def _bias(node: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return node["bias"] if "bias" in node else np.zeros(shape, node["kernel"].dtype if "kernel" in node else node["scale"].dtype)


def _common(model: GPT) -> dict[str, Any]:
    return {
        "vocab_size": model.vocab_size,
        "tie_word_embeddings": model.tie_embeddings,
        "initializer_range": model.init_std,
        "dtype": str(np.dtype(model.weight_dtype)),
    }


def _layers(model: GPT, tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [tree[f"block_{i}"] for i in range(model.n_layers)]


def _head(model: GPT, tree: dict[str, Any], name: str) -> Tensors:
    return {} if model.tie_embeddings else {name: tree["lm_head"]["kernel"].T}


def _neox(model: GPT, tree: dict[str, Any]) -> tuple[dict[str, Any], Tensors]:
    d, h, hd = model.n_embd, model.n_head, model.head_dim
    config = {
        **_common(model),
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "hidden_size": d,
        "num_hidden_layers": model.n_layers,
        "num_attention_heads": h,
        "intermediate_size": model.ff_width,
        "hidden_act": "gelu_new",
        "max_position_embeddings": model.block_size,
        "layer_norm_eps": model.norm_eps,
        "use_parallel_residual": False,
        "attention_bias": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": model.rope_theta, "partial_rotary_factor": 1.0},
        "rotary_pct": 1.0,
        "rotary_emb_base": model.rope_theta,
    }
    out: Tensors = {"gpt_neox.embed_in.weight": tree["token_embedding"]["embedding"]}
    out |= _norm(tree["final_norm"], "gpt_neox.final_layer_norm", d)
    out |= _head(model, tree, "embed_out.weight")
    for i, layer in enumerate(_layers(model, tree)):
        p = f"gpt_neox.layers.{i}"
        qkv = layer["attn"]["qkv"]
        # [3, D, H*hd] -> per head (q, k, v) rows: [H, 3, hd, D] -> [3*H*hd, D]
        weight = qkv["kernel"].reshape(3, d, h, hd).transpose(2, 0, 3, 1).reshape(3 * h * hd, d)
        bias = _bias(qkv, (3, h * hd)).reshape(3, h, hd).transpose(1, 0, 2).reshape(-1)
        out |= {f"{p}.attention.query_key_value.weight": weight, f"{p}.attention.query_key_value.bias": bias}
        out |= _linear(layer["attn"]["out"], f"{p}.attention.dense", d)
        out |= _norm(layer["attn_norm"], f"{p}.input_layernorm", d)
        out |= _norm(layer["mlp_norm"], f"{p}.post_attention_layernorm", d)
        out |= _linear(layer["mlp"]["up"], f"{p}.mlp.dense_h_to_4h", model.ff_width)
        out |= _linear(layer["mlp"]["down"], f"{p}.mlp.dense_4h_to_h", d)
    return config, out


def _llama(model: GPT, tree: dict[str, Any]) -> tuple[dict[str, Any], Tensors]:
    d, h, hd = model.n_embd, model.n_head, model.head_dim
    config = {
        **_common(model),
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": d,
        "num_hidden_layers": model.n_layers,
        "num_attention_heads": h,
        "num_key_value_heads": h,
        "head_dim": hd,
        "intermediate_size": model.ff_width,
        "hidden_act": "silu",
        "max_position_embeddings": model.block_size,
        "rms_norm_eps": model.norm_eps,
        "attention_bias": model.bias,
        "mlp_bias": model.bias,
        "rope_parameters": {"rope_type": "default", "rope_theta": model.rope_theta},
        "rope_theta": model.rope_theta,
    }
    out: Tensors = {"model.embed_tokens.weight": tree["token_embedding"]["embedding"]}
    out["model.norm.weight"] = tree["final_norm"]["scale"]
    out |= _head(model, tree, "lm_head.weight")
    for i, layer in enumerate(_layers(model, tree)):
        p = f"model.layers.{i}"
        qkv = layer["attn"]["qkv"]
        for j, name in enumerate("qkv"):
            out[f"{p}.self_attn.{name}_proj.weight"] = qkv["kernel"][j].T
            if model.bias:
                out[f"{p}.self_attn.{name}_proj.bias"] = qkv["bias"][j]
        gate_up = layer["mlp"]["gate_up"]
        for j, name in enumerate(("gate", "up")):
            out[f"{p}.mlp.{name}_proj.weight"] = gate_up["kernel"][j].T
            if model.bias:
                out[f"{p}.mlp.{name}_proj.bias"] = gate_up["bias"][j]
        out |= _linear(layer["attn"]["out"], f"{p}.self_attn.o_proj", d, keep_bias=model.bias)
        out |= _linear(layer["mlp"]["down"], f"{p}.mlp.down_proj", d, keep_bias=model.bias)
        out[f"{p}.input_layernorm.weight"] = layer["attn_norm"]["scale"]
        out[f"{p}.post_attention_layernorm.weight"] = layer["mlp_norm"]["scale"]
    return config, out


def _gpt2(model: GPT, tree: dict[str, Any]) -> tuple[dict[str, Any], Tensors]:
    d = model.n_embd
    config = {
        **_common(model),
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": d,
        "n_layer": model.n_layers,
        "n_head": model.n_head,
        "n_inner": model.ff_width,
        "n_positions": model.block_size,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": model.norm_eps,
        "attn_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
    }
    out: Tensors = {
        "transformer.wte.weight": tree["token_embedding"]["embedding"],
        "transformer.wpe.weight": tree["position_embedding"]["embedding"],
    }
    out |= _norm(tree["final_norm"], "transformer.ln_f", d)
    for i, layer in enumerate(_layers(model, tree)):
        p = f"transformer.h.{i}"
        qkv = layer["attn"]["qkv"]
        out[f"{p}.attn.c_attn.weight"] = np.concatenate(list(qkv["kernel"]), axis=1)  # Conv1D: [D, 3D]
        out[f"{p}.attn.c_attn.bias"] = _bias(qkv, (3, d)).reshape(-1)
        out |= _conv1d(layer["attn"]["out"], f"{p}.attn.c_proj", d)
        out |= _norm(layer["attn_norm"], f"{p}.ln_1", d)
        out |= _norm(layer["mlp_norm"], f"{p}.ln_2", d)
        out |= _conv1d(layer["mlp"]["up"], f"{p}.mlp.c_fc", model.ff_width)
        out |= _conv1d(layer["mlp"]["down"], f"{p}.mlp.c_proj", d)
    return config, out


def _linear(node: dict[str, np.ndarray], name: str, width: int, keep_bias: bool = True) -> Tensors:
    out = {f"{name}.weight": node["kernel"].T}
    if keep_bias:
        out[f"{name}.bias"] = _bias(node, (width,))
    return out


def _conv1d(node: dict[str, np.ndarray], name: str, width: int) -> Tensors:
    return {f"{name}.weight": node["kernel"], f"{name}.bias": _bias(node, (width,))}


def _norm(node: dict[str, np.ndarray], name: str, width: int) -> Tensors:
    return {f"{name}.weight": node["scale"], f"{name}.bias": _bias(node, (width,))}
