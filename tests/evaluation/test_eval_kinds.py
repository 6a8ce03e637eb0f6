"""Evaluation kinds against hand-computed scores, padding, compile-once and bad input."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import jax
import numpy as np
import pytest
from evalkit import (
    EOT,
    VOCAB,
    PositionLM,
    TableLM,
    greedy_table,
    log_softmax,
    probs_row,
    random_table,
    table_params,
)

from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.errors import TheseusError
from theseus.evaluation import (
    Choice,
    Continuation,
    ContinuationEvaluation,
    Evaluator,
    GenerationEvaluation,
    ModelLogits,
    MultipleChoiceEvaluation,
    NextTokenEvaluation,
    PerplexityEvaluation,
    Prompt,
    Runner,
    contains,
)
from theseus.evaluation.batching import Row, make_batches, rolling_windows

TOK = ByteTokenizer()


def evaluator(model, table, evaluations, batch_size=4, **kw) -> Evaluator:
    params = table_params(table)
    return Evaluator(model, lambda: params, TOK, evaluations, batch_size, **kw)


def doc_nll(table: np.ndarray, text: str) -> tuple[float, int]:
    """Bigram NLL of ``text`` after an end-of-text token, and the number of tokens."""
    ids = [EOT, *TOK.encode(text)]
    nll = -sum(log_softmax(table[a])[b] for a, b in itertools.pairwise(ids))
    return nll, len(ids) - 1


# ---------------------------------------------------------------------------- windows


def test_rolling_windows_score_each_token_once_with_most_context():
    tokens = list(range(10))  # 9 targets
    rows = rolling_windows(tokens, context_length=4, stride=2)
    assert [r.tokens for r in rows] == [(0, 1, 2, 3, 4), (2, 3, 4, 5, 6), (4, 5, 6, 7, 8), (5, 6, 7, 8, 9)]
    assert [r.n_scored for r in rows] == [4, 2, 2, 1]
    scored = [t for r in rows for t in r.tokens[-r.n_scored :]]
    assert scored == list(range(1, 10))


def test_rolling_windows_short_document_is_one_row():
    rows = rolling_windows([7, 8, 9], context_length=8, stride=4)
    assert rows == [Row((7, 8, 9), 2)]


def test_row_fit_drops_oldest_tokens():
    row = Row(tuple(range(10)), 3).fit(4)
    assert row == Row((5, 6, 7, 8, 9), 3)
    assert Row(tuple(range(10)), 9).fit(4).n_scored == 4


def test_make_batches_pads_rows_and_batch():
    rows = [Row((1, 2, 3), 1), Row((4, 5), 1), Row(tuple(range(12)), 2)]
    batches = list(make_batches(rows, batch_size=2, context_length=16))
    assert [b.idx.shape for b in batches] == [(2, 8), (2, 16)]
    first = batches[0]
    assert first.rows == [0, 1]
    assert first.mask.tolist()[0][:3] == [0.0, 1.0, 0.0]
    assert first.targets[0, 1] == 3
    last = batches[1]
    assert last.rows == [2]
    assert last.mask[1].sum() == 0  # the padding row scores nothing
    assert last.mask[0].sum() == 2


# ---------------------------------------------------------------------------- perplexity


def test_perplexity_matches_hand_computation_with_sliding_window():
    table = random_table(VOCAB)
    docs = ["to be or not to be", "ay", "that is the question, whether tis nobler"]
    result = evaluator(TableLM(block_size=8), table, [PerplexityEvaluation(examples=docs, name="ppl")])()
    total, tokens = map(sum, zip(*(doc_nll(table, d) for d in docs)))
    assert result["ppl/tokens"] == tokens
    assert result["ppl/nll"] == pytest.approx(total / tokens, rel=1e-5)
    assert result["ppl/perplexity"] == pytest.approx(math.exp(total / tokens), rel=1e-5)
    n_bytes = sum(len(d.encode()) for d in docs)
    assert result["ppl/bits_per_byte"] == pytest.approx(total / math.log(2) / n_bytes, rel=1e-5)


class StrideThree(PerplexityEvaluation):
    STRIDE = 3


def test_perplexity_scores_tokens_at_window_positions():
    table = random_table(8, seed=3)
    text = "abcdefghijkl"  # 12 tokens after the end-of-text prefix
    ev = StrideThree(examples=[text], name="pos")
    result = evaluator(PositionLM(block_size=8), table, [ev], context_length=8)()
    ids = [EOT, *TOK.encode(text)]
    # first window: targets 1..8 at positions 0..7; then 3 new targets per window, at the end of a full window
    positions = [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 7]
    nll = -sum(log_softmax(table[p])[ids[i + 1]] for i, p in enumerate(positions))
    assert result["pos/nll"] == pytest.approx(nll / 12, rel=1e-5)


def test_next_token_accuracy_by_hand():
    table = greedy_table({"a": "b", "b": "a"})
    ev = NextTokenEvaluation(examples=["abab", "abba"], name="nt")
    result = evaluator(TableLM(block_size=8), table, [ev])()
    # after end-of-text the argmax is "\n" (a miss); "abab" then hits 3 of 3, "abba" 2 of 3
    assert result["nt/tokens"] == 8
    assert result["nt/accuracy"] == pytest.approx(5 / 8)


# ---------------------------------------------------------------------------- multiple choice


def choice_table() -> np.ndarray:
    table = random_table(VOCAB, seed=1)
    table[ord("q")] = probs_row({ord(" "): 0.9})
    table[ord(" ")] = probs_row({ord("x"): 0.2, ord("y"): 0.3})
    table[ord("y")] = probs_row({ord("z"): 0.5})
    return table


def test_multiple_choice_acc_and_acc_norm_by_hand():
    # " x": .9*.2 = .18 (ln -1.71); " yz": .9*.3*.5 = .135 (ln -2.00): raw prefers x,
    # per character (1 vs 2) prefers yz.
    examples = [
        Choice("q", ["x", "yz"], 1),  # acc 0, acc_norm 1
        Choice("q", ["x", "yz"], 0),  # acc 1, acc_norm 0
        Choice("q", ["yz", "x", "xx"], 1),  # acc 1 (x), acc_norm 0 (yz)
    ]
    ev = MultipleChoiceEvaluation(examples=examples, name="mc")
    result = evaluator(TableLM(block_size=8), choice_table(), [ev], batch_size=4)()
    assert result == {"mc/acc": pytest.approx(2 / 3), "mc/acc_norm": pytest.approx(1 / 3)}


def test_multiple_choice_loglikelihoods_by_hand():
    table = choice_table()
    runner = evaluator(TableLM(block_size=8), table, []).runner
    ids = TOK.encode
    scores = runner.score([Row((*ids("q"), *ids(" x")), 2), Row((*ids("q"), *ids(" yz")), 3)])
    assert scores.logprob == pytest.approx([math.log(0.18), math.log(0.135)], rel=1e-5)


class ByBytes(MultipleChoiceEvaluation):
    NORM = "bytes"


class NoDelimiter(MultipleChoiceEvaluation):
    DELIMITER = ""


def test_acc_norm_can_count_bytes():
    table = choice_table()
    # " xé" = .9 * .2 * .675 * .675 (ln -2.50); " yz" = .135 (ln -2.00). "xé" is 2 characters but
    # 3 bytes: per character yz wins (-1.25 < -1.00), per byte xé wins (-0.83 > -1.00).
    table[ord("x")] = probs_row({0xC3: 0.675})
    table[0xC3] = probs_row({0xA9: 0.675})
    examples = [Choice("q", ["yz", "xé"], 1)]
    chars = evaluator(TableLM(block_size=8), table, [MultipleChoiceEvaluation(examples=examples, name="c")])()
    by_bytes = evaluator(TableLM(block_size=8), table, [ByBytes(examples=examples, name="b")])()
    assert chars == {"c/acc": 0.0, "c/acc_norm": 0.0}
    assert by_bytes == {"b/acc": 0.0, "b/acc_norm": 1.0}


def test_padding_is_excluded_from_scores():
    table = random_table(VOCAB, seed=2)
    docs = ["alpha", "be", "gamma ray", "d", "epsilon delta", "zeta"]  # 6 docs, 4 per batch
    single = evaluator(
        TableLM(block_size=16), table, [PerplexityEvaluation(examples=docs, name="p")], batch_size=1
    )()
    batched = evaluator(
        TableLM(block_size=16), table, [PerplexityEvaluation(examples=docs, name="p")], batch_size=4
    )()
    assert batched == pytest.approx(single, rel=1e-6)
    mc = [Choice("q", ["x", "yz"], 1), Choice("q", ["x", "yz", "y"], 0), Choice("qq", ["a"], 0)]
    single = evaluator(
        TableLM(block_size=8), table, [MultipleChoiceEvaluation(examples=mc, name="m")], batch_size=1
    )()
    batched = evaluator(
        TableLM(block_size=8), table, [MultipleChoiceEvaluation(examples=mc, name="m")], batch_size=4
    )()
    assert batched == single


def test_max_examples_takes_the_first_n():
    table = random_table(VOCAB)
    docs = ["first doc", "second one", "third"]
    result = evaluator(
        TableLM(block_size=16), table, [PerplexityEvaluation(examples=docs, name="p")], max_examples=2
    )()
    assert result["p/tokens"] == len("first doc") + len("second one")


# ---------------------------------------------------------------------------- continuation and generation


def test_continuation_greedy_accuracy_and_perplexity():
    table = greedy_table({"c": "a", "a": "t"})
    examples = [Continuation("the c", "at"), Continuation("the c", "ab")]
    result = evaluator(TableLM(block_size=16), table, [ContinuationEvaluation(examples=examples, name="l")])()
    assert result["l/acc"] == 0.5
    lp = [
        log_softmax(table[ord("c")])[ord("a")] + log_softmax(table[ord("a")])[ord("t")],
        log_softmax(table[ord("c")])[ord("a")] + log_softmax(table[ord("a")])[ord("b")],
    ]
    assert result["l/perplexity"] == pytest.approx(math.exp(-np.mean(lp)), rel=1e-5)


def test_generation_exact_match_contains_and_custom_check():
    table = greedy_table({"=": "2", "2": "\n"})
    prompts = [Prompt("1+1=", "2"), Prompt("2+2=", "4"), Prompt("0+2=", "2")]
    exact = GenerationEvaluation(examples=prompts, name="exact")
    has = GenerationEvaluation(examples=prompts, name="has", check=contains)
    custom = GenerationEvaluation(examples=prompts, name="len", check=lambda out, ans: len(out) / 2)
    result = evaluator(TableLM(block_size=16), table, [exact, has, custom], batch_size=2)()
    assert result == {
        "exact/accuracy": pytest.approx(2 / 3),
        "has/accuracy": pytest.approx(2 / 3),
        "len/accuracy": 0.5,
    }


# ---------------------------------------------------------------------------- compile once


def test_scorer_compiles_once_per_shape():
    traces = []
    model = TableLM(block_size=16)

    def logits_fn(params, idx):
        traces.append(idx.shape)
        return model.apply({"params": params}, idx)

    table = random_table(VOCAB)
    docs = [f"doc number {i:02d}" for i in range(11)]  # all bucket to 16 inputs
    for _ in range(2):  # a second evaluator reuses the compiled scorer
        params = table_params(table)
        ev = Evaluator(
            model,
            lambda p=params: p,
            TOK,
            [PerplexityEvaluation(examples=docs, name="p")],
            4,
            logits_fn=logits_fn,
        )
        ev()
    assert traces == [(4, 16)]


def test_equal_models_share_the_compiled_scorer():
    assert ModelLogits(TableLM(block_size=8)) == ModelLogits(TableLM(block_size=8))
    assert hash(ModelLogits(TableLM(block_size=8))) == hash(ModelLogits(TableLM(block_size=8)))


# ---------------------------------------------------------------------------- bad input


def test_unknown_evaluation_key_suggests_the_closest():
    with pytest.raises(TheseusError, match=r"unknown evaluation 'hellaswg' \(did you mean hellaswag\?\)"):
        Evaluator(TableLM(), dict, TOK, ["hellaswg"])


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        (
            GenerationEvaluation(examples=[Prompt("ok", "1"), Prompt("", "2")], name="g"),
            "the prompt of example 1",
        ),
        (NoDelimiter(examples=[Choice("q", ["a", ""], 0)], name="m"), "an option of example 0"),
        (PerplexityEvaluation(examples=["fine", ""], name="p"), "document of example 1"),
        (ContinuationEvaluation(examples=[Continuation("a", "")], name="c"), "the target of example 0"),
        (MultipleChoiceEvaluation(examples=[Choice("q", ["a", "b"], 2)], name="m"), "answer 2 but 2 options"),
    ],
)
def test_bad_examples_raise_one_line(evaluation, message):
    ev = evaluator(TableLM(block_size=8), random_table(VOCAB), [evaluation])
    with pytest.raises(TheseusError) as info:
        ev()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_evaluation_without_examples_or_load_is_a_user_error():
    class Unfinished(PerplexityEvaluation):
        pass

    with pytest.raises(TheseusError, match="Unfinished must override load"):
        Unfinished(name="u").examples()


def test_no_examples_is_an_error():
    ev = evaluator(TableLM(block_size=8), random_table(VOCAB), [PerplexityEvaluation(examples=[], name="p")])
    with pytest.raises(TheseusError, match="evaluation p has no examples"):
        ev()


def test_runner_rejects_bad_sizes():
    with pytest.raises(TheseusError, match="eval.batch_size must be >= 1"):
        Runner(ModelLogits(TableLM()), dict, TOK, batch_size=0, context_length=8)
    with pytest.raises(TheseusError, match=r"at least 2 tokens \(eval.context_length\), got 1"):
        Runner(ModelLogits(TableLM()), dict, TOK, batch_size=1, context_length=1)
    with pytest.raises(TheseusError, match="eval.batch_size"):
        Evaluator(TableLM(), dict, TOK, [], 0)


def test_mesh_splits_rows_over_the_batch_axis():
    from jax.sharding import Mesh

    devices = np.array(jax.devices()[:4]).reshape(4, 1)
    mesh = Mesh(devices, ("batch", "shard"))
    table = random_table(VOCAB)
    docs = ["one", "two two", "three three three", "four", "five"]
    plain = evaluator(
        TableLM(block_size=8), table, [PerplexityEvaluation(examples=docs, name="p")], batch_size=4
    )()
    sharded = evaluator(
        TableLM(block_size=8), table, [PerplexityEvaluation(examples=docs, name="p")], batch_size=4, mesh=mesh
    )()
    assert sharded == pytest.approx(plain, rel=1e-6)


@dataclass
class CountingConfig:
    size: int = 3


class Counting(PerplexityEvaluation):
    CONFIG = CountingConfig
    loads = 0

    def load(self) -> list[str]:
        type(self).loads += 1
        return [f"document {i}" for i in range(self.config.size)]


def test_examples_load_once_per_config():
    for _ in range(3):  # a trainer builds a new evaluator at every validation
        assert len(Counting().examples()) == 3
    assert len(Counting(CountingConfig(size=2)).examples()) == 2
    assert Counting.loads == 2
