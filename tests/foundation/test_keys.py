"""The key reference: `theseus keys JOB`, the fixed/changeable classes, and the hints a misplaced key gets."""

from pathlib import Path

from clihelp import run_cli

from theseus.config import schema
from theseus.registry import JOBS

COUNTER = str(Path(__file__).with_name("counter_job.py"))

#: what a run may change under it; everything else of gpt/train/pretrain is fixed
PRETRAIN_CHANGEABLE = {
    "architecture.attention", "architecture.remat", "architecture.scan_unroll",
    "checkpoint.async_save", "checkpoint.every_steps", "checkpoint.keep_every", "checkpoint.keep_last",
    "eval.arc_easy.data_files", "eval.arc_easy.split", "eval.arithmetic.max_operand", "eval.arithmetic.n_examples",
    "eval.arithmetic.operations", "eval.arithmetic.seed", "eval.batch_size", "eval.context_length",
    "eval.evaluations", "eval.hellaswag.data_files", "eval.hellaswag.split", "eval.lambada.data_files",
    "eval.lambada.split", "eval.max_examples", "eval.piqa.data_files", "eval.piqa.split", "eval.shakespeare.chars",
    "eval.shakespeare.edition", "eval.shakespeare.split_seed", "eval.shakespeare.val_fraction",
    "logging.tensorboard", "logging.wandb", "logging.wandb_mode", "logging.wandb_project",
    "optimization.beta1", "optimization.beta2", "optimization.eps", "optimization.grad_clip", "optimization.lr",
    "optimization.min_lr_ratio", "optimization.warmup_pct", "optimization.warmup_steps",
    "optimization.weight_decay",
    "system.compilation_cache", "system.coordinator_address", "system.num_processes", "system.process_id",
    "training.log_every", "training.peak_flops", "training.per_device_batch_size", "training.prefetch",
    "training.shard", "training.steps", "training.tokens", "training.val_batches", "training.val_every",
}
PRETRAIN_FIXED = {
    "architecture.bias", "architecture.block_size", "architecture.dropout", "architecture.dtype",
    "architecture.init_std", "architecture.mlp", "architecture.n_embd", "architecture.n_embd_ff",
    "architecture.n_head", "architecture.n_layers", "architecture.norm", "architecture.norm_eps",
    "architecture.param_dtype", "architecture.position", "architecture.rope_theta", "architecture.scan_layers",
    "architecture.tie_embeddings", "architecture.vocab_size",
    "training.batch_size", "training.data", "training.seed",
}


def _classes(job: str) -> tuple[set[str], set[str]]:
    fields = schema(*JOBS[job].config()).fields
    return {k for k, s in fields.items() if s.changeable}, {k for k, s in fields.items() if not s.changeable}


def test_every_pretrain_key_is_classified_as_the_docs_say():
    changeable, fixed = _classes("gpt/train/pretrain")
    assert changeable == PRETRAIN_CHANGEABLE
    assert fixed == PRETRAIN_FIXED
    hf_changeable, hf_fixed = _classes("hf/train/finetune")
    assert {"training.steps", "optimization.lr"} <= hf_changeable
    assert {"architecture.huggingface.model", "training.from_pretrained", "training.data"} <= hf_fixed
    tok_changeable, tok_fixed = _classes("data/tokenize_variable_dataset")
    assert tok_changeable == {"data.workers", "data.chunk_chars"}
    assert {"data.dataset", "data.val_fraction", "tokenizer.backend"} <= tok_fixed


def _row(stdout: str, key: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.split()[:1] == [key])
    return line.split()


def test_keys_lists_every_key_with_type_default_class_and_doc(tmp_path):
    listing = run_cli("keys", "gpt/train/pretrain", check=True).stdout
    for key in PRETRAIN_CHANGEABLE | PRETRAIN_FIXED:
        assert _row(listing, key), key
    assert _row(listing, "optimization.lr")[1:4] == ["float", "0.0003", "changeable"]
    assert _row(listing, "training.batch_size")[1:4] == ["int", "32", "fixed"]
    assert "global batch in sequences per optimizer step (>= 1)" in listing
    assert " ".join(_row(listing, "training.data")[2:6]) == "[{name: shakespeare, rate: 1.0}]"
    only = run_cli("keys", "gpt/train/pretrain", "optimization.", check=True).stdout
    assert "optimization.lr" in only and "training.steps" not in only
    own = run_cli("keys", "test/counter", "--load", COUNTER, check=True).stdout
    assert _row(own, "counter.steps")[3] == "fixed"  # a key nobody classified stays fixed
    missing = run_cli("keys", "gpt/train/pretrain", "nothing.")
    assert missing.returncode == 2 and "no config key starting with 'nothing.'" in missing.stderr

    misplaced = run_cli("configure", "gpt/train/pretrain", str(tmp_path / "x.yaml"), "training.lr=1e-3")
    assert misplaced.returncode == 2
    assert "unknown config key training.lr on the command line (did you mean optimization.lr?)" in misplaced.stderr
    malformed = run_cli("configure", "gpt/train/pretrain", str(tmp_path / "x.yaml"), "training.data=shakespeare")
    assert malformed.returncode == 2 and "write it as [{name: shakespeare, rate: 1.0}]" in malformed.stderr
