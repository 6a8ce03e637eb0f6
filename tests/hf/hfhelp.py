"""Tiny Hugging Face checkpoints and a tiny tokenizer, made on the spot (transformers + torch CPU, offline)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

VOCAB = 320
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# our own ChatML-style template: the assistant turn ends with <|im_end|>
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = [
    "the", "a", "one", "some", "every", "quick", "slow", "red", "green", "small", "large", "fox", "dog",
    "cat", "bird", "horse", "river", "hill", "town", "runs", "jumps", "sees", "finds", "eats", "likes",
    "over", "under", "near", "beside", "and", "but", "then", "so",
]

# one small config per family, each with the variant switches that family can have
FAMILIES: dict[str, dict] = {
    "llama": dict(  # grouped-query attention, biases, untied head, llama3 rope scaling
        model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    ),
    "mistral": dict(  # sliding window shorter than the test sequences
        model_type="mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, sliding_window=5,
    ),
    "qwen2": dict(  # q/k/v biases, tied head, yarn rope scaling
        model_type="qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 16},
    ),
    "qwen3": dict(  # q/k norms, head_dim beyond hidden/heads, linear rope scaling
        model_type="qwen3", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=False,
        rope_parameters={"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0},
    ),
    "gpt2": dict(model_type="gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "gpt_neox": dict(  # partial rotary, parallel residual
        model_type="gpt_neox", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        rotary_pct=0.5, use_parallel_residual=True,
    ),
}


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` short random sentences over a small vocabulary."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "." for _ in range(n)]


def write_tokenizer(folder: Path) -> Path:
    """A byte-level BPE trained on :func:`sentences`, with ChatML specials and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 16, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(sentences(400) + ["user assistant system"] * 20, trainer)
    tok.add_special_tokens(SPECIALS)
    tok.save(str(folder / "tokenizer.json"))
    settings = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder


def make_checkpoint(family: str, folder: Path, tokenizer: Path | None = None, *, dtype: str = "float32",
                    max_shard_size: str | None = None, seed: int = 0, vocab: int = VOCAB) -> Path:
    """A random tiny checkpoint of ``family`` saved with ``save_pretrained``; weights are spread out
    (std 0.2, random norms and biases) so that every parameter changes the logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(FAMILIES[family])
    config = AutoConfig.for_model(settings.pop("model_type"), vocab_size=vocab, bos_token_id=0, eos_token_id=0,
                                  pad_token_id=0, **settings)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    model = model.to(getattr(torch, dtype))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    if tokenizer is not None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).write_bytes((tokenizer / name).read_bytes())
    return folder


def torch_logits(folder: Path, idx: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """transformers' float32 logits for ``idx`` (left padding: ``mask`` 0, positions counted from the first real token)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    mask = np.ones_like(idx) if mask is None else mask
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(idx, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            position_ids=torch.tensor(positions, dtype=torch.long),
        )
    return out.logits.float().numpy()
