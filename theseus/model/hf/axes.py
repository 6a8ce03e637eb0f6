"""The default logical axes of every parameter of the supported families, by parameter name.

Attention projections split their head dimension (``n_attn``), MLP projections their
hidden width (``n_embd_ff``), embeddings and heads their vocabulary; norms and the q/k
norms are replicated along ``n_embd`` / ``head_dim``. GPT-2's fused ``c_attn`` concatenates
all queries, then all keys, then all values, so its output width is ``n_embd_out``.
"""

from __future__ import annotations

import re

from theseus.model.axes import Axes

EMBD, ATTN, FF, OUT = Axes.N_EMBD.value, Axes.N_ATTN.value, Axes.N_EMBD_FF.value, Axes.N_EMBD_OUT.value
VOCAB, POSITIONS, HEAD = Axes.VOCAB.value, Axes.BLOCK_SIZE.value, Axes.HEAD_DIM.value

# (pattern on the dotted name without its final ".weight"/".bias", axes of the weight, axes of the bias)
_TABLE: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (r"(embed_tokens|wte|embed_in|lm_head|embed_out)", (VOCAB, EMBD), (VOCAB,)),
    (r"wpe", (POSITIONS, EMBD), ()),
    (r"self_attn\.(q|k|v)_proj|attention\.query_key_value", (ATTN, EMBD), (ATTN,)),
    (r"self_attn\.o_proj|attention\.dense", (EMBD, ATTN), (EMBD,)),
    (r"self_attn\.(q|k)_norm", (HEAD,), ()),
    (r"mlp\.(gate_proj|up_proj|dense_h_to_4h)", (FF, EMBD), (FF,)),
    (r"mlp\.(down_proj|dense_4h_to_h)", (EMBD, FF), (EMBD,)),
    (r"attn\.c_attn", (EMBD, OUT), (OUT,)),
    (r"attn\.c_proj", (ATTN, EMBD), (EMBD,)),
    (r"mlp\.c_fc", (EMBD, FF), (FF,)),
    (r"mlp\.c_proj", (FF, EMBD), (EMBD,)),
    (r"(\w*norm|ln_\w+)", (EMBD,), (EMBD,)),
]
_COMPILED = [(re.compile(rf"(^|\.){pattern}$"), weight, bias) for pattern, weight, bias in _TABLE]


def default_axes(name: str) -> tuple[str, ...] | None:
    """Logical axes of parameter ``name`` (``model.layers.0.mlp.up_proj.weight``), or ``None`` if unknown."""
    stem, _, leaf = name.rpartition(".")
    for pattern, weight, bias in _COMPILED:
        if pattern.search(stem):
            return weight if leaf == "weight" else bias
    return None
