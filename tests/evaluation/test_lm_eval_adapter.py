"""The lm-evaluation-harness adapter: lm_eval.simple_evaluate on locally defined tasks, no hub.

The harness's numbers must agree with theseus's own evaluation kinds on the same data.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from evalkit import VOCAB, TableLM, greedy_table, log_softmax, make_run, random_table, table_params

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from theseus.data.byte_tokenizer import ByteTokenizer  # noqa: E402
from theseus.errors import TheseusError  # noqa: E402
from theseus.evaluation import (  # noqa: E402
    Choice,
    Evaluator,
    GenerationEvaluation,
    MultipleChoiceEvaluation,
    PerplexityEvaluation,
    Prompt,
)
from theseus.evaluation.lm_eval_adapter import TheseusLM  # noqa: E402

TOK = ByteTokenizer()

MC = [
    {"context": "The sky is", "options": ["blue", "green", "a large fish"], "answer": 0},
    {"context": "Two plus two is", "options": ["four", "five"], "answer": 0},
    {"context": "Cats say", "options": ["meow", "woof", "moo"], "answer": 0},
]
DOCS = [
    {"text": "a short text to score"},
    {"text": "and another, longer one that needs two windows of sixteen"},
]
GEN = [
    {"prompt": "1+1=", "answer": "2"},
    {"prompt": "2+2=", "answer": "4"},
    {"prompt": "3+3=", "answer": "6"},
]

TASKS = {
    "toy_mc": """
task: toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{options}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""",
    "toy_ppl": """
task: toy_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: bits_per_byte
""",
    "toy_gen": """
task: toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
""",
}


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory) -> TaskManager:
    d = tmp_path_factory.mktemp("lm_eval_tasks")
    for name, rows in (("toy_mc", MC), ("toy_ppl", DOCS), ("toy_gen", GEN)):
        data = d / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / f"{name}.yaml").write_text(TASKS[name].format(data=data))
    return TaskManager(include_path=str(d), include_defaults=False)


def table() -> np.ndarray:
    t = random_table(VOCAB, seed=11)
    t += greedy_table({"=": "2", "2": "\n"})  # "1+1=" is answered right, the others wrong
    return t


def run(tasks: list[str], task_manager: TaskManager, lm: TheseusLM) -> dict:
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=task_manager, log_samples=False)
    return out["results"]


def native(evaluation) -> dict[str, float]:
    params = table_params(table())
    evaluation.name = "x"
    return Evaluator(TableLM(block_size=16), lambda: params, TOK, [evaluation], 4)()


def test_simple_evaluate_agrees_with_theseus_kinds(task_manager):
    lm = TheseusLM.from_pieces(TableLM(block_size=16), table_params(table()), TOK, batch_size=4)
    results = run(["toy_mc", "toy_ppl", "toy_gen"], task_manager, lm)

    mc = native(
        MultipleChoiceEvaluation(examples=[Choice(r["context"], r["options"], r["answer"]) for r in MC])
    )
    assert results["toy_mc"]["acc,none"] == pytest.approx(mc["x/acc"])
    assert results["toy_mc"]["acc_norm,none"] == pytest.approx(mc["x/acc_norm"])

    ppl = native(PerplexityEvaluation(examples=[r["text"] for r in DOCS]))
    assert results["toy_ppl"]["bits_per_byte,none"] == pytest.approx(ppl["x/bits_per_byte"], rel=1e-5)

    gen = native(GenerationEvaluation(examples=[Prompt(r["prompt"], r["answer"]) for r in GEN]))
    assert gen["x/accuracy"] == pytest.approx(1 / 3)
    assert results["toy_gen"]["exact_match,none"] == pytest.approx(gen["x/accuracy"])


def instance(kind: str, args: tuple) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


def test_loglikelihood_by_hand():
    t = table()
    lm = TheseusLM.from_pieces(TableLM(block_size=16), table_params(t), TOK, batch_size=2)
    (ll, greedy), (empty_ll, empty_greedy), (no_context, _) = lm.loglikelihood(
        [
            instance("loglikelihood", ("1+1", "=2")),
            instance("loglikelihood", ("x", "")),
            instance("loglikelihood", ("", "a")),
        ]
    )
    expected = log_softmax(t[ord("1")])[ord("=")] + log_softmax(t[ord("=")])[ord("2")]
    assert ll == pytest.approx(expected, rel=1e-5)
    assert greedy is (int(np.argmax(t[ord("1")])) == ord("=") and int(np.argmax(t[ord("=")])) == ord("2"))
    assert (empty_ll, empty_greedy) == (0.0, True)
    assert no_context == pytest.approx(log_softmax(t[TOK.eot_id])[ord("a")], rel=1e-5)


def test_loglikelihood_rolling_scores_every_token_once():
    t = table()
    lm = TheseusLM.from_pieces(TableLM(block_size=8), table_params(t), TOK)
    text = "rolling over more than one window"
    (total,) = lm.loglikelihood_rolling([instance("loglikelihood_rolling", (text,))])
    ids = [TOK.eot_id, *TOK.encode(text)]
    expected = sum(log_softmax(t[a])[b] for a, b in itertools.pairwise(ids))
    assert total == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(total)


def test_from_run_and_harness_arguments(tmp_path: Path):
    from theseus.registry import JOBS

    JOBS["test/table_lm"] = type("Job", (), {"MODEL": TableLM})
    run_dir = make_run(tmp_path, random_table(VOCAB, seed=2))
    lm = TheseusLM.create_from_arg_string(f"run_dir={run_dir},step=3", {"batch_size": 2})
    assert lm.evaluator.step == 3 and lm.evaluator.batch_size == 2
    assert isinstance(
        lm.generate_until([instance("generate_until", ("ab", {"until": ["\n"], "max_gen_toks": 3}))])[0], str
    )


def test_run_argument_names_a_run_directory_or_a_run_under_out(tmp_path: Path):
    from lm_eval.api.registry import get_model

    from theseus.registry import JOBS

    assert get_model("theseus") is TheseusLM
    assert get_model("dummy").__name__ == "DummyLM"  # registering theseus keeps the harness's own models
    JOBS["test/table_lm"] = type("Job", (), {"MODEL": TableLM})
    run_dir = make_run(tmp_path, random_table(VOCAB, seed=2))  # OUT/runs/default/default/toy
    by_name = TheseusLM.create_from_arg_string(f"run=toy,out={tmp_path},step=7")
    by_path = TheseusLM.create_from_arg_string(f"run={run_dir}")
    assert by_name.evaluator.step == 7 and by_path.evaluator.step == 7
    with pytest.raises(TheseusError, match=r"runs/default/other/toy is not a run directory"):
        TheseusLM.create_from_arg_string(f"run=toy,out={tmp_path},group=other")
    with pytest.raises(TheseusError, match="needs model_args run="):
        TheseusLM.create_from_arg_string("step=3")
    with pytest.raises(TheseusError, match="model_args step='last' must be a whole number"):
        TheseusLM.create_from_arg_string(f"run={run_dir},step=last")
    with pytest.raises(TheseusError, match="model_args max_gen_toks='many' must be a whole number"):
        TheseusLM.create_from_arg_string(f"run={run_dir},max_gen_toks=many")
