"""`theseus generate` through the real CLI: a tiny GPT trained by the CLI, then sampled; bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelp import run_cli

from theseus.inference import generate
from theseus.model.models import GPT
from theseus.recipes.gpt import EvaluateGPT

TINY = [
    "architecture.vocab_size=320", "architecture.n_layers=2", "architecture.n_embd=32",
    "architecture.n_head=2", "architecture.block_size=32",
    "training.batch_size=16", "training.log_every=5", "training.val_every=10", "training.val_batches=2",
    "optimization.lr=3e-3", "checkpoint.every_steps=5", "training.steps=10",
]
SEPARATOR = "-" * 40

NOT_A_GPT = '''
from theseus.job import BasicJob
from theseus.model.module import Module
from theseus.registry import JOBS


class Bigram(Module):
    """A model family that is not a GPT."""


class TrainBigram(BasicJob):
    """Registers the family; never run."""

    MODEL = Bigram


JOBS["test/bigram"] = TrainBigram
'''


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """An output root with three tokenized plays (byte tokenizer) and a GPT trained 10 steps on them."""
    root = tmp_path_factory.mktemp("generate")
    tok, gpt = root / "tok.yaml", root / "gpt.yaml"
    run_cli("configure", "data/tokenize_variable_dataset", str(tok), "data.dataset=shakespeare",
            "data.max_documents=3", "data.val_fraction=0.34", check=True)
    run_cli("run", "tok", str(tok), str(root), check=True)
    run_cli("configure", "gpt/train/pretrain", str(gpt), *TINY, check=True)
    run_cli("run", "gpt", str(gpt), str(root), check=True)
    return root


def _user_error(proc, fragment):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


def test_greedy_samples_equal_full_recomputation_of_the_checkpoint(out):
    prompts = ["ROMEO:", "To be, or not"]
    args = [f"--prompt={p}" for p in prompts]
    proc = run_cli("generate", "gpt", str(out), *args, "--temperature", "0", "--max-new-tokens", "12", check=True)
    assert "checkpoint 10" in proc.stderr
    printed = proc.stdout.rstrip("\n").split(f"\n{SEPARATOR}\n")

    evaluator = EvaluateGPT.from_checkpoint(Path(out) / "runs" / "default" / "default" / "gpt")
    model, tokenizer = evaluator.model, evaluator.tokenizer
    assert isinstance(model, GPT) and evaluator.step == 10
    expected = generate(
        lambda params, idx: model.apply({"params": params}, idx),
        [tokenizer.encode(p) for p in prompts],
        12,
        params=evaluator.params_fn(),
        eos_id=tokenizer.eot_id,
        tokenizer=tokenizer,
        max_length=model.block_size,
    )
    assert printed == [p + g.text for p, g in zip(prompts, expected, strict=True)]
    assert all(len(g.tokens) > 0 for g in expected)


def test_sampling_an_earlier_checkpoint(out):
    args = ["generate", "gpt", str(out), "--prompt", "KING:", "--step", "5", "--max-new-tokens", "16",
            "--temperature", "1.0", "--top-k", "40", "--top-p", "0.95", "--seed", "3"]
    proc = run_cli(*args, check=True)
    assert "checkpoint 5" in proc.stderr
    assert proc.stdout.startswith("KING:") and len(proc.stdout) > len("KING:\n")


def test_bad_input_is_one_line(out, tmp_path):
    _user_error(run_cli("generate", "gpt", str(out), "--prompt", "", "--max-new-tokens", "8"), "prompt 0 is empty")
    _user_error(run_cli("generate", "nope", str(out), "--prompt", "a"), "no run nope")
    _user_error(run_cli("generate", "gpt", str(out), "--prompt", "a", "--step", "7"), "no checkpoint at step 7")
    plugin = tmp_path / "bigram.py"
    plugin.write_text(NOT_A_GPT)
    other = Path(out) / "runs" / "default" / "default" / "bigram"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("job: test/bigram\n")
    _user_error(run_cli("generate", "bigram", str(out), "--prompt", "a", "--load", str(plugin)),
                "no complete checkpoint")
