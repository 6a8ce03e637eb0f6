"""`theseus lm-eval`: lm-evaluation-harness's own command line on a theseus run, through real processes.

A tiny GPT is trained by the CLI; the harness then scores it on two local tasks (multiple
choice, rolling perplexity) and its numbers must equal theseus's own evaluations of the same
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import run_cli, tokenize_tiny_shakespeare

from theseus.evaluation import Choice, Evaluator, MultipleChoiceEvaluation, PerplexityEvaluation

pytest.importorskip("lm_eval")

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=1", "architecture.n_embd=32", "architecture.n_head=2",
    "architecture.block_size=32", "training.batch_size=8", "training.steps=4", "training.val_batches=1",
]
CHOICES = [
    {"context": "ROMEO: What light", "options": [" through yonder window", " qqq zzz"], "answer": 0},
    {"context": "To be, or not", "options": [" to be", " xkcd"], "answer": 0},
    {"context": "My lord", "options": [",", "7"], "answer": 1},
]
TEXTS = [{"text": "O Romeo, Romeo! wherefore art thou Romeo?"}, {"text": "Now is the winter of our discontent."}]
TASK = """
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: {kind}
{fields}
metric_list:
  - metric: {metric}
"""
MC_FIELDS = 'doc_to_text: "{{context}}"\ndoc_to_choice: "{{options}}"\ndoc_to_target: "{{answer}}"'
PPL_FIELDS = 'doc_to_text: ""\ndoc_to_target: "{{text}}"'


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root with a tiny GPT trained 4 steps on three tokenized plays, and two local tasks."""
    root = tmp_path_factory.mktemp("lm_eval_cli")
    tokenize_tiny_shakespeare(root)
    run_cli("configure", "gpt/train/pretrain", str(root / "gpt.yaml"), *TINY, check=True)
    run_cli("run", "gpt", str(root / "gpt.yaml"), str(root), check=True)
    tasks = root / "tasks"
    tasks.mkdir()
    for name, rows, kind, fields, metric in (
        ("toy_mc", CHOICES, "multiple_choice", MC_FIELDS, "acc"),
        ("toy_ppl", TEXTS, "loglikelihood_rolling", PPL_FIELDS, "bits_per_byte"),
    ):
        data = tasks / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tasks / f"{name}.yaml").write_text(TASK.format(name=name, data=data, kind=kind, fields=fields, metric=metric))
    return root


def test_harness_command_line_scores_a_run_like_theseus_does(out: Path) -> None:
    results_dir = out / "harness"
    proc = run_cli(
        "lm-eval", "--model", "theseus", "--model_args", f"run=gpt,out={out}", "--tasks", "toy_mc,toy_ppl",
        "--include_path", str(out / "tasks"), "--batch_size", "4", "--output_path", str(results_dir),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (results_file,) = results_dir.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]

    loaded = Evaluator.from_checkpoint(out / "runs" / "default" / "default" / "gpt")
    assert loaded.step == 4
    native = Evaluator(
        loaded.model, loaded.params_fn, loaded.tokenizer,
        [
            MultipleChoiceEvaluation(name="mc", examples=[Choice(r["context"], r["options"], r["answer"]) for r in CHOICES]),
            PerplexityEvaluation(name="ppl", examples=[r["text"] for r in TEXTS]),
        ],
        4,
    )()
    assert results["toy_mc"]["acc,none"] == pytest.approx(native["mc/acc"])
    assert results["toy_ppl"]["bits_per_byte,none"] == pytest.approx(native["ppl/bits_per_byte"], rel=1e-4)

