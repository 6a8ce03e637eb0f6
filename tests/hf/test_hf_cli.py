"""A tiny Llama-family checkpoint through the real CLI: fine-tune (text and chats), shard, evaluate, generate, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clihelp import run_cli
from hfhelp import sentences, torch_logits

FINETUNE = [
    "architecture.block_size=32", "training.batch_size=8", "training.log_every=2", "training.val_every=4",
    "training.val_batches=2", "optimization.lr=3e-3", "optimization.warmup_steps=0", "training.steps=8",
]
EVALUATIONS = "eval.evaluations=[shakespeare_ppl,shakespeare_next_token,lambada,piqa,arithmetic]"


def run_dir(out: Path, name: str) -> Path:
    return out / "runs" / "default" / "default" / name


def metrics(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir(out, name) / "metrics.jsonl").read_text().splitlines()]


def one_line_error(proc, fragment: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[theseus]")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def out(tmp_path_factory, checkpoint):
    """An output root with text and chats tokenized by the checkpoint's tokenizer, and a config per job."""
    root = tmp_path_factory.mktemp("hfcli")
    model = checkpoint("llama")
    (root / "corpus.txt").write_text("\n".join(sentences(400, seed=1)))
    with open(root / "chats.jsonl", "w") as fh:
        for text in sentences(120, seed=2):
            chat = [{"role": "user", "content": text}, {"role": "assistant", "content": text.upper()}]
            fh.write(json.dumps({"messages": chat}) + "\n")
    (root / "piqa.jsonl").write_text("".join(
        json.dumps({"goal": f"the {w} runs", "sol1": "over the hill.", "sol2": "under the river.", "label": i % 2}) + "\n"
        for i, w in enumerate(["fox", "dog", "cat"])
    ))
    (root / "lambada.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences(3, seed=3)))
    tokenizer = ["tokenizer.backend=huggingface", f"tokenizer.path={model}", "data.dataset=text_files"]
    run_cli("configure", "data/tokenize_variable_dataset", str(root / "text.yaml"), *tokenizer,
            f"data.text_files.paths=[{root / 'corpus.txt'}]", "data.text_files.split_on=line", check=True)
    run_cli("run", "tok-text", str(root / "text.yaml"), str(root), check=True)
    run_cli("configure", "data/tokenize_blockwise_dataset", str(root / "chats.yaml"), *tokenizer,
            f"data.text_files.paths=[{root / 'chats.jsonl'}]", "data.text_files.messages_field=messages",
            "data.suffix=chats", "data.assistant_only=true", "architecture.block_size=32", check=True)
    run_cli("run", "tok-chats", str(root / "chats.yaml"), str(root), check=True)
    run_cli("configure", "hf/train/finetune", str(root / "ft.yaml"), f"architecture.huggingface.model={model}",
            "training.data=[{name: text_files}]", *FINETUNE, check=True)
    evaluation = ["eval.max_examples=3", "eval.batch_size=4", f"eval.lambada.data_files={root / 'lambada.jsonl'}",
                  f"eval.piqa.data_files={root / 'piqa.jsonl'}", "eval.arithmetic.n_examples=3", EVALUATIONS]
    run_cli("configure", "hf/evaluate", str(root / "eval.yaml"), *evaluation, check=True)
    return root


@pytest.fixture(scope="module")
def finetuned(out):
    """The fine-tuning run on a 4x2 mesh (8 devices, 2-way tensor parallel), evaluating as it trains."""
    run_cli("run", "ft", str(out / "ft.yaml"), str(out), "training.shard=2", "eval.max_examples=2",
            "eval.evaluations=[shakespeare_ppl]", check=True)
    return metrics(out, "ft")


def test_finetuning_learns_on_a_4x2_mesh_and_matches_one_device(out, finetuned):
    first, last = finetuned[0], finetuned[-1]
    assert last["loss"] < first["loss"] - 0.3
    assert last["mfu"] > 0 and last["tokens_per_s"] > 0
    assert "eval/shakespeare_ppl/perplexity" in last and np.isfinite(last["val_loss"])
    run_cli("run", "one", str(out / "ft.yaml"), str(out), check=True,
            env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
    single = metrics(out, "one")
    assert [r["step"] for r in single] == [r["step"] for r in finetuned]
    for sharded, alone in zip(finetuned, single, strict=True):
        assert sharded["loss"] == pytest.approx(alone["loss"], rel=1e-4)
        if "val_loss" in alone:
            assert sharded["val_loss"] == pytest.approx(alone["val_loss"], rel=1e-4)


def test_training_starts_from_the_checkpoint_weights_resumes_and_exports_them_back(out, checkpoint, tmp_path):
    """Steps at lr 0 leave the pretrained weights as they were, through a resume: the export holds them."""
    from safetensors.numpy import load_file

    run_cli("run", "zero", str(out / "ft.yaml"), str(out), "training.steps=2", "optimization.lr=0",
            "checkpoint.every_steps=1", check=True)
    resumed = run_cli("restore", "zero", "1", str(out), check=True)
    assert "resuming zero from checkpoint step 1" in resumed.stderr
    run_cli("export", "zero", str(out), str(tmp_path / "zero"), check=True)
    exported, original = load_file(tmp_path / "zero" / "model.safetensors"), load_file(checkpoint("llama") / "model.safetensors")
    assert sorted(exported) == sorted(original)
    for name, tensor in original.items():
        np.testing.assert_array_equal(exported[name], tensor, err_msg=name)


def test_export_of_the_finetuned_run_loads_in_transformers_with_its_logits(out, finetuned, tmp_path):
    from theseus.recipes.huggingface import EvaluateHF

    proc = run_cli("export", "ft", str(out), str(tmp_path / "ft"), check=True)
    assert "llama checkpoint of step 8" in proc.stdout
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (tmp_path / "ft").iterdir()
    }
    evaluator = EvaluateHF.from_checkpoint(run_dir(out, "ft"))
    idx = np.random.default_rng(1).integers(0, 300, (2, 16))
    ours = np.asarray(evaluator.model.apply({"params": evaluator.params_fn()}, idx))
    np.testing.assert_allclose(ours, torch_logits(tmp_path / "ft", idx), atol=1e-4, rtol=0)
    one_line_error(run_cli("export", "ft", str(out), str(tmp_path / "ft")), "already exists")


def test_supervised_finetuning_on_chats_learns(out):
    run_cli("run", "sft", str(out / "ft.yaml"), str(out), "training.data=[{name: text_files_chats}]",
            "training.steps=6", check=True)
    records = metrics(out, "sft")
    assert records[-1]["loss"] < records[0]["loss"] and all(np.isfinite(r["loss"]) for r in records)


def test_generate_on_the_finetuned_run_equals_full_recomputation(out, finetuned):
    from theseus.inference import generate
    from theseus.recipes.huggingface import EvaluateHF

    prompts = ["the quick fox", "a dog"]
    proc = run_cli("generate", "ft", str(out), *[f"--prompt={p}" for p in prompts], "--temperature", "0",
                   "--max-new-tokens", "6", check=True)
    assert "checkpoint 8" in proc.stderr
    evaluator = EvaluateHF.from_checkpoint(run_dir(out, "ft"))
    model, tokenizer = evaluator.model, evaluator.tokenizer
    expected = generate(
        lambda params, idx: model.apply({"params": params}, idx), [tokenizer.encode(p) for p in prompts], 6,
        params=evaluator.params_fn(), eos_id=tokenizer.eot_id, tokenizer=tokenizer, max_length=model.block_size,
    )
    assert proc.stdout.rstrip("\n").split("\n" + "-" * 40 + "\n") == [
        p + g.text for p, g in zip(prompts, expected, strict=True)
    ]


def test_every_evaluation_kind_runs_on_the_run_and_on_the_checkpoint_itself(out, finetuned, checkpoint):
    for name, target in (("eval-ft", "evaluate.run=ft"), ("eval-base", f"evaluate.pretrained={checkpoint('llama')}")):
        run_cli("run", name, str(out / "eval.yaml"), str(out), target, check=True)
        results = {p.stem: json.loads(p.read_text()) for p in (run_dir(out, name) / "results").glob("*.json")}
        assert sorted(results) == ["arithmetic", "lambada", "piqa", "shakespeare_next_token", "shakespeare_ppl"]
        assert all(r["examples"] > 0 and all(np.isfinite(list(r["metrics"].values()))) for r in results.values())
    base = json.loads((run_dir(out, "eval-base") / "results" / "shakespeare_ppl.json").read_text())
    tuned = json.loads((run_dir(out, "eval-ft") / "results" / "shakespeare_ppl.json").read_text())
    assert base["metrics"] != tuned["metrics"] and tuned["step"] == 8


def test_bad_input_is_one_line(out, tmp_path):
    run_cli("configure", "data/tokenize_variable_dataset", str(tmp_path / "byte.yaml"), "data.dataset=text_files",
            f"data.text_files.paths=[{out / 'corpus.txt'}]", "data.suffix=bytes", check=True)
    run_cli("run", "tok-bytes", str(tmp_path / "byte.yaml"), str(out), check=True)
    ft = str(out / "ft.yaml")
    one_line_error(run_cli("run", "b1", ft, str(out), "training.data=[{name: text_files_bytes}]"),
                   "data text_files_bytes was tokenized with byte")
    one_line_error(run_cli("run", "b2", ft, str(out), "architecture.huggingface.model=acme/no-such-model"),
                   "acme/no-such-model is not a local folder and the hub cannot provide it")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    one_line_error(run_cli("run", "b3", ft, str(out), f"architecture.huggingface.model={tmp_path / 'bert'}"),
                   "model_type 'bert' is not supported")
    one_line_error(run_cli("run", "b4", str(out / "eval.yaml"), str(out)), "set one of evaluate.run")
