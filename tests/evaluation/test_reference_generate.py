"""The reference generator: greedy and sampled decoding, padding, stopping, truncation, bad input."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from evalkit import EOT, VOCAB, PrefixSumLM, TableLM, greedy_table, random_table, table_params

from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.errors import TheseusError
from theseus.inference import generate

TOK = ByteTokenizer()


@functools.cache
def apply(model):
    """One jitted logits function per model, so the tests share compilations."""

    @jax.jit
    def logits_fn(params, idx):
        return model.apply({"params": params}, idx)

    return logits_fn


def manual_greedy(table, prompt, n):
    """Greedy decoding of one prompt by PrefixSumLM's rule, in numpy: argmax table[sum(ids + 1) % V]."""
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(np.argmax(table[sum(i + 1 for i in ids) % VOCAB])))
    return ids[len(prompt) :]


def test_greedy_rows_equal_each_prompt_alone():
    table = random_table(VOCAB, seed=4)
    prompts = [TOK.encode("hello there"), TOK.encode("x"), TOK.encode("a longer prompt than the rest")]
    out = generate(apply(PrefixSumLM()), prompts, 6, params=table_params(table))
    for prompt, gen in zip(prompts, out, strict=True):
        assert gen.tokens == manual_greedy(table, prompt, 6)
        assert gen.finish_reason == "length"
        assert gen.text is None


def test_logits_fn_of_idx_only():
    model = PrefixSumLM()
    params = table_params(random_table(VOCAB, seed=4))
    fn = jax.jit(functools.partial(apply(model), params))
    prompts = [TOK.encode("abc"), TOK.encode("de")]
    assert [g.tokens for g in generate(fn, prompts, 4)] == [
        g.tokens for g in generate(apply(model), prompts, 4, params=params)
    ]


def test_left_padding_lets_the_model_see_the_pad():
    table = random_table(VOCAB, seed=5)
    prompts = [TOK.encode("abcdef"), TOK.encode("z")]
    left = generate(apply(PrefixSumLM()), prompts, 5, params=table_params(table), padding_side="left")
    assert left[0].tokens == manual_greedy(table, prompts[0], 5)  # the longest prompt has no padding
    assert left[1].tokens != manual_greedy(table, prompts[1], 5)  # five pads in front change the sums


def test_stops_at_eos_and_stop_strings_per_row():
    table = greedy_table({"=": "4", "4": "2", "2": "\n", "?": "!"})
    table[ord("!"), :] = 0.0
    table[ord("!"), EOT] = 5.0
    params = table_params(table)
    prompts = [TOK.encode("2+2="), TOK.encode("what?"), TOK.encode("zz")]
    out = generate(
        apply(TableLM()), prompts, 8, params=params, eos_id=EOT, stop_strings=["\n"], tokenizer=TOK
    )
    assert out[0].text == "42" and out[0].finish_reason == "stop"
    assert out[0].tokens == TOK.encode("42\n")
    assert out[1].tokens == [ord("!")] and out[1].finish_reason == "eos" and out[1].text == "!"
    assert out[2].text == "" and out[2].finish_reason == "stop"


def test_multi_character_stop_string_cuts_text():
    table = greedy_table({"a": "b", "b": "c", "c": "d", "d": "a"})
    out = generate(
        apply(TableLM()),
        [TOK.encode("a")],
        10,
        params=table_params(table),
        stop_strings=["cd"],
        tokenizer=TOK,
    )
    assert out[0].text == "b" and out[0].finish_reason == "stop"


def test_long_prompts_are_cut_from_the_left_with_a_warning():
    table = random_table(VOCAB, seed=6)
    prompt = TOK.encode("0123456789abcdefghij")  # 20 tokens; 16 - 4 = 12 fit
    with pytest.warns(UserWarning, match="1 prompt"):
        out = generate(apply(PrefixSumLM()), [prompt], 4, params=table_params(table), max_length=16)
    assert out[0].tokens == manual_greedy(table, prompt[-12:], 4)


def test_sampling_is_seeded_and_filters():
    model = PrefixSumLM()
    params = table_params(random_table(VOCAB, seed=7))
    prompts = [TOK.encode("sample me"), TOK.encode("and me")]
    greedy = [g.tokens for g in generate(apply(model), prompts, 6, params=params)]
    top1 = [g.tokens for g in generate(apply(model), prompts, 6, params=params, temperature=1.0, top_k=1)]
    assert top1 == greedy
    nucleus = [
        g.tokens for g in generate(apply(model), prompts, 6, params=params, temperature=1.0, top_p=1e-6)
    ]
    assert nucleus == greedy
    key = jax.random.key(3)
    a = [g.tokens for g in generate(apply(model), prompts, 6, params=params, temperature=2.0, rng=key)]
    b = [g.tokens for g in generate(apply(model), prompts, 6, params=params, temperature=2.0, rng=key)]
    assert a == b and a != greedy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts_ids": [[1, 2], []]}, "prompt 1 is empty after tokenization"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"max_new_tokens": 16, "max_length": 16}, "leaves no room for a prompt"),
        ({"stop_strings": ["\n"]}, "stop_strings need a tokenizer"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p must be in"),
        ({"temperature": float("nan")}, "temperature must be a number >= 0, got nan"),
        ({"temperature": float("inf")}, "temperature must be a number >= 0, got inf"),
    ],
)
def test_bad_arguments_raise_theseus_error(kwargs, message):
    args = {"prompts_ids": [[1, 2]], "max_new_tokens": 2, **kwargs}
    params = table_params(random_table(VOCAB))
    with pytest.raises(TheseusError, match=message):
        generate(apply(TableLM()), args.pop("prompts_ids"), args.pop("max_new_tokens"), params=params, **args)


def test_ids_the_tokenizer_cannot_decode_are_never_generated():
    """A padded vocabulary (320 rows over the byte tokenizer's 259): the best id, 300, is left out."""
    table = np.zeros((320, 320), np.float32)
    table[:, 300], table[:, ord("A")] = 10.0, 5.0
    model, params = TableLM(vocab_size=320), table_params(table)
    (alone,) = generate(apply(model), [[1]], 3, params=params)
    assert alone.tokens == [300, 300, 300]
    (decoded,) = generate(apply(model), [[1]], 3, params=params, tokenizer=TOK)
    assert decoded.tokens == [ord("A")] * 3 and decoded.text == "AAA"
