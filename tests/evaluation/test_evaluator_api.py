"""The Evaluator: Pattern 1 skeleton, from_trainer (shared params), results files, from_checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from evalkit import VOCAB, TableLM, make_run, random_table, register_toy_evaluation, table_params

from theseus.config import configuration, resolve
from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.errors import TheseusError
from theseus.evaluation import Evaluator, EvaluatorConfig
from theseus.job import ExecutionSpec
from theseus.registry import JOBS
from theseus.trained_run import TrainedRun, abstract_params

TOK = ByteTokenizer()
register_toy_evaluation()


class EvaluateTable(Evaluator[TableLM]):
    MODEL = TableLM


def test_pattern_1_skeleton_verbatim():
    import optax as _optax

    from theseus.evaluation import Evaluator as Ev
    from theseus.model.models import GPT
    from theseus.training.trainer import BaseTrainer, BaseTrainerConfig

    class EvaluateMyRun(Ev[GPT]):
        MODEL = GPT

    class PretrainMyRun(BaseTrainer[BaseTrainerConfig, GPT]):
        MODEL = GPT
        CONFIG = BaseTrainerConfig

        @classmethod
        def schedule(cls) -> _optax._src.base.Schedule:
            return "wsd"

        def evaluator(self) -> Ev[GPT]:
            return EvaluateMyRun.from_trainer(self)

    assert EvaluatorConfig in PretrainMyRun.config()
    model = GPT(n_layers=1, n_embd=32, n_head=2, block_size=16, vocab_size=VOCAB, scan_layers=False)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(0.0, 0.02, s.shape).astype(s.dtype), abstract_params(model))
    trainer = SimpleNamespace(model=model, params=params, tokenizer=TOK, run_dir=None, mesh=None, step=0)
    cfg = resolve([EvaluatorConfig], ({"eval": {"evaluations": ["test_toy_ppl"], "batch_size": 2}}, ""))
    with configuration(cfg):
        scores = PretrainMyRun.evaluator(trainer)()
    # an untrained GPT is close to uniform over its vocabulary
    assert scores["test_toy_ppl/perplexity"] == pytest.approx(VOCAB, rel=0.05)


class FakeTrainer:
    """What a trainer exposes to the evaluator (TrainerView); the tokenizer is counted to prove it is read lazily."""

    def __init__(self, root: Path, table: np.ndarray) -> None:
        self.model = TableLM(block_size=16)
        self.params = table_params(table)
        self.spec = ExecutionSpec("run", root)
        self.run_dir = self.spec.run
        self.mesh = None
        self.step = 5
        self.tokenizer_reads = 0

    @property
    def tokenizer(self) -> ByteTokenizer:
        self.tokenizer_reads += 1
        return TOK


def test_from_trainer_shares_params_and_reads_the_config(tmp_path):
    trainer = FakeTrainer(tmp_path, random_table(VOCAB, seed=1))
    cfg = resolve([EvaluatorConfig], ({"eval": {"evaluations": ["test_toy_ppl"], "batch_size": 2}}, ""))
    with configuration(cfg):
        ev = EvaluateTable.from_trainer(trainer)
    assert ev.batch_size == 2 and ev.run_dir == trainer.spec.run_dir and ev.trainer is trainer
    first = ev()["test_toy_ppl/perplexity"]
    trainer.params = table_params(np.zeros((VOCAB, VOCAB), np.float32))  # "training" replaced the params
    second = ev()["test_toy_ppl/perplexity"]
    assert first != second and second == pytest.approx(VOCAB, rel=1e-5)
    assert trainer.tokenizer_reads == 1
    trainer.step = 9
    (path,) = ev.write_results()  # the step is the trainer's when the results are written
    assert json.loads(path.read_text())["step"] == 9


def test_from_trainer_without_evaluations_touches_nothing(tmp_path):
    trainer = FakeTrainer(tmp_path, random_table(VOCAB))
    ev = EvaluateTable.from_trainer(trainer)  # no active config: the defaults, no evaluations
    assert ev() == {}
    assert trainer.tokenizer_reads == 0


def test_write_results_writes_one_json_per_evaluation(tmp_path):
    trainer = FakeTrainer(tmp_path, random_table(VOCAB))
    ev = Evaluator(
        trainer.model, lambda: trainer.params, TOK, ["test_toy_ppl"], 4, run_dir=trainer.spec.run_dir, step=12
    )
    scores = ev()
    (path,) = ev.write_results()
    assert path == trainer.spec.run_dir / "results" / "test_toy_ppl.json"
    record = json.loads(path.read_text())
    assert record["metrics"]["perplexity"] == pytest.approx(scores["test_toy_ppl/perplexity"])
    assert record["examples"] == 2 and record["step"] == 12 and record["examples_per_s"] > 0
    assert not list(path.parent.glob(".*tmp"))


def test_write_results_needs_a_place():
    ev = Evaluator(TableLM(), dict, TOK, [], 1)
    with pytest.raises(TheseusError, match="needs a run directory"):
        ev.write_results()


def test_duplicate_evaluations_are_an_error():
    with pytest.raises(TheseusError, match="listed more than once"):
        Evaluator(TableLM(), dict, TOK, ["test_toy_ppl", "test_toy_ppl"], 1)


# ---------------------------------------------------------------------------- from_checkpoint


def test_from_checkpoint_restores_params_only_and_scores(tmp_path):
    table = random_table(VOCAB, seed=5)
    run = make_run(tmp_path, table)
    ev = EvaluateTable.from_checkpoint(run)
    assert ev.step == 7 and ev.batch_size == 2 and ev.model == TableLM(vocab_size=VOCAB, block_size=16)
    np.testing.assert_array_equal(np.asarray(ev.params_fn()["table"]), table + 1)
    scores = ev()
    direct = Evaluator(TableLM(block_size=16), lambda: table_params(table + 1), TOK, ["test_toy_ppl"], 4)()
    assert scores == pytest.approx(direct, rel=1e-6)
    (path,) = ev.write_results()
    assert path == run / "results" / "test_toy_ppl.json"
    assert json.loads(path.read_text())["step"] == 7


def test_from_checkpoint_step_overrides_and_boxed_params(tmp_path):
    table = random_table(VOCAB, seed=6)
    run = make_run(tmp_path, table, boxed=True)
    ev = EvaluateTable.from_checkpoint(run, step=3, overrides=["eval.batch_size=3"])
    assert ev.step == 3 and ev.batch_size == 3
    np.testing.assert_array_equal(np.asarray(ev.params_fn()["table"]), table)


def test_from_checkpoint_finds_the_model_through_the_job(tmp_path):
    JOBS["test/table_lm"] = SimpleNamespace(MODEL=TableLM)
    run = make_run(tmp_path, random_table(VOCAB))
    ev = Evaluator.from_checkpoint(run, tokenizer=TOK)
    assert isinstance(ev.model, TableLM)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda run: None, "no checkpoint at step 99"),
        (
            lambda run: (run / "config.yaml").write_text(
                (run / "config.yaml").read_text().replace("vocab_size: 259", "vocab_size: 300")
            ),
            "do not fit the model",
        ),
        (lambda run: (run / "config.yaml").unlink(), "is not a run directory"),
    ],
)
def test_from_checkpoint_errors(tmp_path, setup, message):
    run = make_run(tmp_path, random_table(VOCAB))
    setup(run)
    with pytest.raises(TheseusError, match=message):
        EvaluateTable.from_checkpoint(run, step=99 if "99" in message else None)


def test_from_checkpoint_reads_a_relative_run_directory_and_the_tokenizer_job_json_records(tmp_path, monkeypatch):
    run = make_run(tmp_path, random_table(VOCAB), tokenizer_meta=False)  # no data under OUT (a pulled run)
    (run / "job.json").write_text(json.dumps({"tokenizer": TOK.identity()}))
    monkeypatch.chdir(tmp_path)
    ev = EvaluateTable.from_checkpoint(Path("runs/default/default/toy"))
    assert ev.step == 7 and ev.tokenizer.identity() == TOK.identity()
    run = TrainedRun.locate("toy", ".")
    assert run.job_key == "test/table_lm" and run.newest_step() == 7 and run.path.name == "toy"


def test_from_checkpoint_without_a_known_tokenizer(tmp_path):
    run = make_run(tmp_path, random_table(VOCAB), tokenizer_meta=False)
    with pytest.raises(TheseusError, match="cannot tell which tokenizer"):
        EvaluateTable.from_checkpoint(run)
