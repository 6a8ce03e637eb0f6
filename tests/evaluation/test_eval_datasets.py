"""Built-in evaluation definitions: registry, field mapping from local files in the hub schemas, offline sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evalkit import VOCAB, TableLM, random_table, table_params

from theseus.config import configuration, configure, resolve
from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.errors import TheseusError
from theseus.evaluation import Choice, Continuation, Evaluator, EvaluatorConfig, Prompt
from theseus.evaluation.datasets.arithmetic import ArithmeticConfig, problems
from theseus.evaluation.datasets.shakespeare import ShakespeareEvalConfig, ShakespearePerplexity, pieces
from theseus.registry import EVALUATIONS

assert os.environ.get("HF_DATASETS_OFFLINE") == "1" and os.environ.get("HF_HUB_OFFLINE") == "1"

TOK = ByteTokenizer()

HELLASWAG_ROWS = [
    {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.",
        "ctx_b": "he",
        "ctx": "A man is sitting on a roof. he",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        "source_id": "activitynet~v_-JhWjGDPHMY",
        "split": "val",
        "split_type": "indomain",
        "label": "3",
    },
    {
        "ind": 92,
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to grow grass [title] Rake the soil.",
        "ctx_b": "then",
        "ctx": "",
        "endings": ["[step] Water it.", "sing.", "fly away.", "[substeps] Sleep."],
        "source_id": "wikihow~1",
        "split": "val",
        "split_type": "zeroshot",
        "label": "0",
    },
]

ARC_ROWS = [
    {
        "id": "Mercury_7175875",
        "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect?",
        "choices": {
            "text": [
                "Planetary density will decrease.",
                "Planetary years will become longer.",
                "Planetary days will become shorter.",
                "Planetary gravity will become stronger.",
            ],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "C",
    },
    {
        "id": "NYSEDREGENTS_2015_4_1",
        "question": "Which is a liquid?",
        "choices": {"text": ["ice", "milk", "steam"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    },
]

PIQA_ROWS = [
    {
        "goal": "How do I ready a guinea pig cage for it's new occupants?",
        "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
        "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.",
        "label": 0,
    },
    {
        "goal": "dresser",
        "sol1": "replace drawer with bobby pin ",
        "sol2": "finish, woodgrain with  bobby pin ",
        "label": 1,
    },
]

LAMBADA_ROWS = [
    {
        "text": "In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel. \"Figured if you're going to be out at night getting hit by cars, you might as well have some backup.\" I look at him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth curved in a confident grin, I don't care about signs"
    },
    {"text": "Give me a minute to change and I'll meet you at the docks"},
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_parquet(path: Path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("evaldata")
    return {
        "hellaswag": write_jsonl(d / "hellaswag_val.jsonl", HELLASWAG_ROWS),
        "arc_easy": write_parquet(d / "arc_easy_test.parquet", ARC_ROWS),
        "piqa": write_parquet(d / "piqa_validation.parquet", PIQA_ROWS),
        "lambada": write_jsonl(d / "lambada_test.jsonl", LAMBADA_ROWS),
    }


def configured(tree: dict) -> Evaluator:
    """An evaluator built like a job builds it: from eval/* keys of an active config."""
    cfg = resolve([EvaluatorConfig], (tree, ""))
    params = table_params(random_table(VOCAB))
    with configuration(cfg):
        settings = configure(EvaluatorConfig)
        return Evaluator(
            TableLM(block_size=64),
            lambda: params,
            TOK,
            settings.evaluations,
            settings.batch_size,
            max_examples=settings.max_examples,
        )


def test_registry_lists_the_builtins():
    assert {
        "shakespeare_ppl",
        "shakespeare_next_token",
        "arithmetic",
        "hellaswag",
        "arc_easy",
        "piqa",
        "lambada",
    } <= set(EVALUATIONS)
    assert not {k for k in EVALUATIONS.broken if "evaluation" in k}


def test_hellaswag_fields(fixtures):
    ev = configured(
        {"eval": {"evaluations": ["hellaswag"], "hellaswag": {"data_files": fixtures["hellaswag"]}}}
    )
    examples = ev.evaluations[0].examples()
    assert examples[0] == Choice(
        "Roof shingle removal: A man is sitting on a roof. He",
        [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        3,
    )
    # WikiHow markup: [title] ends a sentence, other [tags] go
    assert examples[1].context == "Home and Garden: How to grow grass. Rake the soil. Then"
    assert examples[1].options[0] == "Water it."
    assert examples[1].options[3] == "Sleep."
    assert examples[1].answer == 0
    scores = ev()
    assert set(scores) == {"hellaswag/acc", "hellaswag/acc_norm"}


def test_arc_easy_fields(fixtures):
    ev = configured({"eval": {"evaluations": ["arc_easy"], "arc_easy": {"data_files": fixtures["arc_easy"]}}})
    first, second = ev.evaluations[0].examples()
    assert first.context.startswith("Question: An astronomer observes") and first.context.endswith(
        "?\nAnswer:"
    )
    assert first.answer == 2 and first.options[2] == "Planetary days will become shorter."
    assert second == Choice("Question: Which is a liquid?\nAnswer:", ["ice", "milk", "steam"], 1)
    assert 0.0 <= ev()["arc_easy/acc"] <= 1.0


def test_piqa_fields(fixtures):
    ev = configured({"eval": {"evaluations": ["piqa"], "piqa": {"data_files": fixtures["piqa"]}}})
    first, second = ev.evaluations[0].examples()
    assert first.context == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    assert first.answer == 0 and len(first.options) == 2
    assert second.answer == 1 and second.options[1] == "finish, woodgrain with  bobby pin "
    assert set(ev()) == {"piqa/acc", "piqa/acc_norm"}


def test_lambada_fields(fixtures):
    ev = configured({"eval": {"evaluations": ["lambada"], "lambada": {"data_files": fixtures["lambada"]}}})
    first, second = ev.evaluations[0].examples()
    assert first.target == " signs" and first.context.endswith("I don't care about")
    assert second == Continuation("Give me a minute to change and I'll meet you at the", " docks")
    scores = ev()
    assert scores["lambada/acc"] == 0.0 and scores["lambada/perplexity"] > 1.0


def test_max_examples_applies_to_registered_evaluations(fixtures):
    ev = configured(
        {
            "eval": {
                "evaluations": ["arc_easy"],
                "max_examples": 1,
                "arc_easy": {"data_files": fixtures["arc_easy"]},
            }
        }
    )
    ev()
    assert ev.results["arc_easy"].examples == 1


def test_missing_local_file_is_one_line(tmp_path):
    ev = configured({"eval": {"evaluations": ["piqa"], "piqa": {"data_files": str(tmp_path / "nope.jsonl")}}})
    with pytest.raises(TheseusError, match=r"eval.piqa.data_files=.*matches no file"):
        ev()


def test_unknown_file_format_is_one_line(tmp_path):
    (tmp_path / "rows.txt").write_text("x\n")
    ev = configured({"eval": {"evaluations": ["piqa"], "piqa": {"data_files": str(tmp_path / "rows.txt")}}})
    with pytest.raises(TheseusError, match="cannot tell the format"):
        ev()


def test_hub_without_network_points_at_data_files():
    ev = configured({"eval": {"evaluations": ["lambada"]}})
    with pytest.raises(TheseusError) as info:
        ev()
    message = str(info.value)
    assert "EleutherAI/lambada_openai" in message and "eval.lambada.data_files" in message
    assert "\n" not in message


def test_wrong_schema_is_an_error(tmp_path):
    bad = write_jsonl(
        tmp_path / "arc.jsonl",
        [{"id": "x", "question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "B"}],
    )
    ev = configured({"eval": {"evaluations": ["arc_easy"], "arc_easy": {"data_files": bad}}})
    with pytest.raises(TheseusError, match="answer 'B' not in"):
        ev()


# ---------------------------------------------------------------------------- offline sets


def test_arithmetic_is_seeded():
    cfg = ArithmeticConfig(n_examples=5, max_operand=9, operations="+-", seed=3)
    assert problems(cfg) == problems(cfg)
    assert problems(cfg) != problems(ArithmeticConfig(n_examples=5, max_operand=9, operations="+-", seed=4))
    for p in problems(cfg):
        a, op, b = p.prompt[0], p.prompt[1], p.prompt[2]
        assert p.prompt.endswith("=") and p.answer == str(eval(f"{a}{op}{b}"))
    with pytest.raises(TheseusError, match="operations"):
        problems(ArithmeticConfig(operations="/"))


def test_arithmetic_scores_a_model_that_knows_one_answer():
    from evalkit import greedy_table

    table = greedy_table({"=": "4", "4": "\n"})
    ev = configured(
        {"eval": {"evaluations": ["arithmetic"], "arithmetic": {"n_examples": 30, "max_operand": 3}}}
    )
    ev.params_fn = lambda: table_params(table)
    expected = sum(p.answer == "4" for p in ev.evaluations[0].examples()) / 30
    assert expected > 0
    assert ev()["arithmetic/accuracy"] == pytest.approx(expected)
    assert isinstance(ev.evaluations[0].examples()[0], Prompt)


def test_shakespeare_held_out_documents():
    ev = ShakespearePerplexity(ShakespeareEvalConfig(chars=500))
    docs = ev.examples()
    assert docs[0].startswith("THE LIFE OF HENRY THE EIGHTH")
    assert all(len(d) >= 500 for d in docs[:-1])
    params = table_params(random_table(VOCAB))
    ev.name = "shakespeare_ppl"
    scores = Evaluator(TableLM(block_size=64), lambda: params, TOK, [ev], 4, max_examples=2)()
    assert scores["shakespeare_ppl/tokens"] == len(docs[0].encode()) + len(docs[1].encode())


def test_shakespeare_with_nothing_held_out():
    with pytest.raises(TheseusError, match="raise eval.shakespeare.val_fraction"):
        ShakespearePerplexity(ShakespeareEvalConfig(edition="folio")).examples()


def test_pieces_cut_at_line_breaks():
    assert pieces("ab\ncd\nef\n\n", 4) == ["ab\ncd\n", "ef\n\n"]
    assert pieces("abc", 10) == ["abc"]
