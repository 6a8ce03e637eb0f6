"""Bad input through the real CLI: each ends in one line, exit 2, and writes nothing (issue 8, items 1, 3, 7-9, 12-14)."""

import json
import os
import shutil

import pytest
from clihelp import run_cli
from relhelp import ECHO, gpt_yaml, one_line_error, run_dir, tokenize, tree

from theseus.checkpoint import retained


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tokenize(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def gpt(out):
    return gpt_yaml(out.parent / "bad-gpt.yaml", "training.steps=8")


@pytest.fixture(scope="module")
def echo(out):
    cfg = out.parent / "bad-echo.yaml"
    run_cli("configure", "test/echo", str(cfg), "--load", ECHO, check=True)
    return cfg


def test_keep_last_below_one_is_refused_and_retention_always_keeps_the_newest(out, gpt):
    before = tree(out)
    for value in ("0", "-1"):
        proc = run_cli("run", f"keep{value}", str(gpt), str(out), f"checkpoint.keep_last={value}")
        one_line_error(proc, f"config key checkpoint.keep_last must be >= 1, got {value}")
    assert tree(out) == before
    assert retained([10, 20, 30], 0, None) == {30}


def test_project_and_group_never_lead_outside_out(out, gpt, tmp_path):
    outside = tmp_path / "unrelated"
    outside.mkdir()
    (outside / "mine.txt").write_text("keep me")
    before = tree(out)
    for flag, value in (("-p", "../../x"), ("-g", str(outside)), ("-p", ".."), ("-g", "a/b"), ("-p", ".hidden")):
        one_line_error(run_cli("run", "esc", str(gpt), str(out), flag, value, "--fresh"), "must be a plain name")
    assert tree(outside) == ["mine.txt"] and not (tmp_path / "x").exists()
    # a run-like directory one level up: commands that read runs must not reach it either
    evil = out / "runs" / "default" / "evil"
    evil.mkdir(parents=True)
    (evil / "config.yaml").write_text("job: test/echo\n")
    (evil / "status.json").write_text('{"state": "completed", "step": 1}')
    before = tree(out)
    for args in (
        ("status", "../evil", str(out)),
        ("logs", "evil", str(out), "-g", ".."),
        ("checkpoints", "../evil", str(out)),
        ("restore", "../evil", "1", str(out)),
        ("generate", "../evil", str(out), "--prompt", "a"),
    ):
        one_line_error(run_cli(*args), "must be a plain name")
    assert tree(out) == before
    shutil.rmtree(evil)


def test_run_names_are_plain_short_and_printable(out, echo):
    before = tree(out)
    for name, fragment in (
        ("forged\n[theseus] run x completed", "control character or line break"),
        ("tab\there", "control character"),
        ("n" * 300, "300 characters long; the limit is 128"),
        ("", "non-empty"),
        ("../up", "must be a plain name"),
    ):
        one_line_error(run_cli("run", name, str(echo), str(out), "--load", ECHO), fragment)
    assert tree(out) == before


def test_interpolation_syntax_stays_literal_everywhere(out, tmp_path):
    cfg = tmp_path / "e.yaml"
    run_cli("configure", "test/echo", str(cfg), "echo.text=${oc.env:HOME}", "--load", ECHO, check=True)
    assert "text: ${oc.env:HOME}" in cfg.read_text()
    run_cli("run", "interp", str(cfg), str(out), "--load", ECHO, check=True)
    assert "text: ${oc.env:HOME}" in (run_dir(out, "interp") / "config.yaml").read_text()
    result = (run_dir(out, "interp") / "results" / "echo.json").read_text()
    assert "${oc.env:HOME}" in result and os.environ["HOME"] not in result
    run_cli("run", "lone", str(cfg), str(out), "echo.text=a${b \\${c", "--load", ECHO, check=True)
    assert '"a${b \\\\${c"' in (run_dir(out, "lone") / "results" / "echo.json").read_text()

    from theseus.quick import quick
    from theseus.registry import load_module

    load_module(ECHO)
    with quick("test/echo", tmp_path / "q", "quick-interp") as j:
        j.config.echo.text = "${oc.env:HOME}"
        j()
    assert "${oc.env:HOME}" in (run_dir(tmp_path / "q", "quick-interp") / "results" / "echo.json").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimization.lr=-1", "config key optimization.lr must be >= 0, got -1.0"),
        ("architecture.dropout=2.0", "config key architecture.dropout must be >= 0 and < 1, got 2.0"),
        ("training.val_batches=-1", "config key training.val_batches must be >= 0, got -1"),
        ("checkpoint.every_steps=-10", "config key checkpoint.every_steps must be >= 1, got -10"),
        ("training.log_every=0", "config key training.log_every must be >= 1, got 0"),
        ("optimization.lr=.nan", "config key optimization.lr must be >= 0, got nan"),
    ],
)
def test_values_outside_their_declared_bounds_are_refused(out, gpt, override, message):
    before = tree(out)
    one_line_error(run_cli("run", "bounds", str(gpt), str(out), override), message)
    assert tree(out) == before


def test_bounds_hold_in_yaml_and_in_the_quick_api(out, gpt, tmp_path):
    from theseus.errors import ConfigError
    from theseus.quick import quick

    bad = tmp_path / "bad.yaml"
    bad.write_text(gpt.read_text().replace("log_every: 2", "log_every: 0"))
    one_line_error(run_cli("run", "yaml-bounds", str(bad), str(out)), "training.log_every must be >= 1, got 0")
    one_line_error(run_cli("configure", "gpt/train/pretrain", str(tmp_path / "c.yaml"), "training.batch_size=0"),
                   "training.batch_size must be >= 1, got 0")
    with quick("gpt/train/pretrain", out, "quick-bounds") as j, pytest.raises(ConfigError, match="< 1, got 2.0"):
        j.config.architecture.dropout = 2.0
    assert not (tmp_path / "c.yaml").exists() and not run_dir(out, "quick-bounds").exists()


def test_a_load_module_that_exits_cannot_end_the_command(out, echo, tmp_path):
    module = tmp_path / "exits.py"
    module.write_text("import sys\nsys.exit(0)\n")
    one_line_error(run_cli("jobs", "--load", str(module)), "called sys.exit(0)")
    one_line_error(run_cli("run", "exits", str(echo), str(out), "--load", str(module)), "called sys.exit(0)")
    assert not run_dir(out, "exits").exists()


def test_non_utf8_yaml_and_prompt_are_one_line(out, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("job: gpt/train/pretrain\ntraining:\n  steps: 8 # caf\xe9\n".encode("latin-1"))
    one_line_error(run_cli("run", "latin", str(bad), str(out)), "is not UTF-8 text (byte 0xe9 at offset")
    fake = run_dir(out, "prompted")
    fake.mkdir(parents=True)
    shutil.copy(out.parent / "bad-gpt.yaml", fake / "config.yaml")
    one_line_error(run_cli("generate", "prompted", str(out), "--prompt", os.fsdecode(b"to be \xff")),
                   "--prompt number 1 is not valid UTF-8")
    shutil.rmtree(fake)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.steps=0"], "training.steps must be >= 1"),
        (["training.batch_size=0"], "training.batch_size must be >= 1, got 0"),
        (["training.batch_size=12"], "not divisible by the 8 data-parallel devices"),
        (["architecture.vocab_size=100"], "set architecture.vocab_size to at least 259"),
        (["training.data=[{name: nothing}]"], "no tokenized dataset 'nothing'"),
        (["architecture.block_size=300000"], "too little train data for block_size 300000"),
        (["training.val_batches=2", "architecture.block_size=140000"], "too little val data"),
    ],
)
def test_errors_found_at_start_leave_no_run_behind(out, gpt, overrides, message):
    before = tree(out)
    one_line_error(run_cli("run", "start-error", str(gpt), str(out), *overrides), message)
    assert tree(out) == before


def test_a_mixture_of_data_made_with_two_tokenizers_is_refused_before_anything_is_written(out, gpt):
    other = out / "data" / "shakespeare_other"
    shutil.copytree(out / "data" / "shakespeare", other)
    try:
        meta = json.loads((other / "meta.json").read_text())
        meta["tokenizer"] = {**meta["tokenizer"], "backend": "tiktoken", "name": "r50k_base", "vocab_sha256": "x"}
        (other / "meta.json").write_text(json.dumps(meta))
        before = tree(out)
        mixture = "training.data=[{name: shakespeare, rate: 1.0}, {name: shakespeare_other, rate: 1.0}]"
        one_line_error(run_cli("run", "mixed", str(gpt), str(out), mixture),
                       "data shakespeare_other was tokenized with tiktoken r50k_base, not with the tokenizer of "
                       "shakespeare; the datasets in training.data must share one tokenizer")
        assert tree(out) == before
    finally:
        shutil.rmtree(other)


def test_a_run_that_never_reached_a_step_starts_again_with_a_corrected_config(out, echo):
    one_line_error(run_cli("run", "fails-first", str(echo), str(out), "echo.fail=true", "--load", ECHO),
                   "echo.fail is set")
    assert (run_dir(out, "fails-first") / "status.json").is_file()
    again = run_cli("run", "fails-first", str(echo), str(out), "--load", ECHO, check=True)
    assert "never reached a step" in again.stderr
    assert (run_dir(out, "fails-first") / "results" / "echo.json").is_file()
    # a run that did reach a step keeps refusing a changed config
    one_line_error(run_cli("run", "fails-first", str(echo), str(out), "echo.text=other", "--load", ECHO),
                   "already exists with a different config")


def test_tokenizing_over_data_made_with_another_config_writes_nothing(out):
    before = tree(out)
    one_line_error(run_cli("run", "retok", str(out / "tok.yaml"), str(out), "data.val_fraction=0.5"),
                   "was tokenized with another config (val_fraction differ)")
    assert tree(out) == before
