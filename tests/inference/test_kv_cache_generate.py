"""Generation with a KV cache against full recomputation: greedy, stops, sampling, compilation, truncation."""

from __future__ import annotations

import functools
import warnings
from collections import Counter

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.errors import TheseusError
from theseus.inference import generate, generate_cached
from theseus.inference.kv_cache import TRACES, init_cache
from theseus.model.models import GPT

TOK = ByteTokenizer()
# a wide init spreads the logits, so float noise never flips a greedy argmax
BASE = {"n_layers": 2, "n_embd": 32, "n_head": 2, "vocab_size": TOK.vocab_size, "block_size": 64, "init_std": 0.3}
CONFIGS = {
    "scanned-rope": {"scan_layers": True, "position": "rope"},
    "unrolled-learned": {"scan_layers": False, "position": "learned"},
}
NEW = 24  # one prefilled token, then a full decode chunk of 16 and a partial one
PROMPTS = [TOK.encode("Hello"), TOK.encode("To be, or not"), TOK.encode("A")]


@functools.cache
def model_and_params(name: str) -> tuple[GPT, dict]:
    """A tiny random GPT of configuration ``name`` and its parameters."""
    model = GPT(**BASE, **CONFIGS[name])
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, 8), jnp.int32))["params"]
    return model, nn.meta.unbox(params)


@functools.cache
def forward(model: GPT):
    """The model's jitted full forward, ``(params, idx) -> logits`` (one compilation per shape)."""
    return jax.jit(lambda params, idx: model.apply({"params": params}, idx))


def reference(name: str, prompts, n: int = NEW, **kwargs):
    """Generation by full recomputation (right padding, nothing cached)."""
    model, params = model_and_params(name)
    return generate(forward(model), prompts, n, params=params, max_length=model.block_size, **kwargs)


def cached(name: str, prompts, n: int = NEW, **kwargs):
    model, params = model_and_params(name)
    return generate_cached(model, params, prompts, n, **kwargs)


@functools.cache
def greedy(name: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(g.tokens) for g in reference(name, PROMPTS))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_with_cache_equals_full_recomputation_and_compiles_once(name):
    before = Counter(TRACES)
    out = cached(name, PROMPTS)
    assert TRACES - before == Counter(prefill=1, decode=1)  # 23 decode steps in 2 chunks, one compilation
    assert [tuple(g.tokens) for g in out] == list(greedy(name))
    assert all(g.finish_reason == "length" and len(g.tokens) == NEW for g in out)
    assert len({tuple(g.tokens) for g in out}) == 3

    # new prompts of other lengths in the same buckets reuse both compilations
    others = [TOK.encode("Once more unto"), TOK.encode("xy"), TOK.encode("Now is the wint")]
    after = Counter(TRACES)
    again = cached(name, others, NEW - 4)
    assert after == TRACES
    assert [g.tokens for g in again] == [g.tokens for g in reference(name, others, NEW - 4)]


def test_each_row_stops_at_its_eos_and_stop_string():
    rows = greedy("scanned-rope")
    eos = rows[0][3]
    stop = TOK.decode(list(rows[1][18:20]))  # found after the first decode chunk
    kwargs = {"eos_id": eos, "stop_strings": [stop], "tokenizer": TOK}
    before = Counter(TRACES)
    out = cached("scanned-rope", PROMPTS, **kwargs)
    assert before == TRACES  # eos id and stop strings are not compiled in
    assert out == reference("scanned-rope", PROMPTS, **kwargs)
    first = rows[0].index(eos)
    assert out[0].finish_reason == "eos" and out[0].tokens == list(rows[0][:first])
    assert out[1].finish_reason == "stop" and stop not in out[1].text
    assert out[1].tokens == list(rows[1][: len(out[1].tokens)]) and len(out[1].tokens) <= 20
    assert out[1].text == TOK.decode(list(rows[1]))[: len(out[1].text)]


def test_top_k_one_samples_the_greedy_tokens():
    out = cached("scanned-rope", PROMPTS, temperature=0.7, top_k=1, rng=jax.random.key(3))
    assert [tuple(g.tokens) for g in out] == list(greedy("scanned-rope"))


def test_seeded_sampling_is_reproducible_and_independent_of_other_rows():
    settings = {"temperature": 1.0, "top_k": 50, "top_p": 0.95}
    one = cached("scanned-rope", PROMPTS, rng=jax.random.key(7), **settings)
    assert one == cached("scanned-rope", PROMPTS, rng=jax.random.key(7), **settings)
    assert [g.tokens for g in one] != [list(r) for r in greedy("scanned-rope")]
    assert one != cached("scanned-rope", PROMPTS, rng=jax.random.key(8), **settings)
    swapped = cached("scanned-rope", [*PROMPTS[:2], TOK.encode("zzz")], rng=jax.random.key(7), **settings)
    assert swapped[:2] == one[:2] and swapped[2] != one[2]


def test_a_long_prompt_loses_its_oldest_tokens_with_a_warning():
    long = list(np.random.default_rng(0).integers(0, 256, 50))
    prompts = [long, *PROMPTS[1:]]
    with pytest.warns(UserWarning, match="1 prompt\\(s\\) longer than 40 tokens"):
        out = cached("scanned-rope", prompts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = cached("scanned-rope", [long[-40:], *PROMPTS[1:]])
    assert out == kept
    assert [tuple(g.tokens) for g in out[1:]] == list(greedy("scanned-rope")[1:])


def test_padding_is_masked_out_of_the_full_forward():
    model, params = model_and_params("scanned-rope")
    idx = jnp.asarray([[0, 0, 0, 72, 105, 33], [84, 111, 32, 98, 101, 44]], jnp.int32)
    mask = jnp.asarray([[False] * 3 + [True] * 3, [True] * 6])
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    padded = jax.jit(lambda p: model.apply({"params": p}, idx, positions=positions, mask=mask))(params)
    np.testing.assert_allclose(padded[0, 3:], forward(model)(params, idx[:, 3:])[0], atol=1e-5)
    np.testing.assert_allclose(padded[1], forward(model)(params, idx)[1], atol=1e-5)
    assert np.isfinite(np.asarray(padded)).all()


def test_the_scanned_layer_stack_decodes_like_its_full_forward():
    model, params = model_and_params("scanned-rope")
    assert model.scan_layers  # generate_cached unrolls it, so decode it here directly
    idx = jnp.asarray(np.random.default_rng(2).integers(0, 256, (2, 12)), jnp.int32)
    mask = jnp.arange(8)[None, :] >= jnp.asarray([[0], [3]])  # row 1 has 3 pads in front
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)

    @jax.jit
    def step(cache, ids, positions, mask):
        logits, variables = model.apply(
            {"params": params, "cache": cache}, ids, positions=positions, mask=mask, decode=True, mutable=["cache"]
        )
        return variables["cache"], logits

    cache = init_cache(model, 2, 12)
    assert cache["blocks"]["attn"]["kv_cache"]["key"].shape == (2, 2, 2, 12, 16)  # layers, B, H, S, head_dim
    cache, logits = step(cache, idx[:, :8], positions, mask)
    got = [logits[:, -1]]
    for t in range(8, 11):
        cache, logits = step(cache, idx[:, t : t + 1], positions[:, -1:] + t - 7, None)
        got.append(logits[:, -1])
    rows = [idx[0, :11], idx[1, 3:11]]
    for row, tokens in enumerate(rows):
        full = forward(model)(params, tokens[None])[0]
        np.testing.assert_allclose(jnp.stack(got)[:, row], full[-4:], atol=1e-4)
    assert cache["blocks"]["attn"]["kv_cache"]["index"].tolist() == [11, 11]


def test_bad_settings_are_user_errors():
    with pytest.raises(TheseusError, match="prompt 1 is empty"):
        cached("scanned-rope", [[1, 2], []])
    with pytest.raises(TheseusError, match="leaves no room"):
        cached("scanned-rope", PROMPTS, 64)
    with pytest.raises(TheseusError, match="top_p"):
        cached("scanned-rope", PROMPTS, temperature=1.0, top_p=0.0)
    with pytest.raises(TheseusError, match="chunk must be >= 1"):
        cached("scanned-rope", PROMPTS, chunk=0)
    with pytest.raises(TheseusError, match="temperature must be a number >= 0, got nan"):
        cached("scanned-rope", PROMPTS, temperature=float("nan"))
