"""The quick API: strict attribute config, run like the CLI, save a runnable YAML."""

import json
from pathlib import Path

import pytest
import yaml
from clihelp import run_cli

from theseus.errors import ConfigError
from theseus.quick import quick
from theseus.registry import load_module

COUNTER = str(Path(__file__).with_name("counter_job.py"))


@pytest.fixture(autouse=True)
def _counter_registered():
    load_module(COUNTER)


def test_quick_config_is_strict(tmp_path):
    with quick("test/counter", tmp_path, "q") as j:
        j.config.counter.steps = 5
        assert j.config.counter.steps == 5
        with pytest.raises(ConfigError, match="did you mean counter.steps"):
            j.config.counter.stepz = 5
        with pytest.raises(ConfigError, match="counter.steps expects int"):
            j.config.counter.steps = "five"
        with pytest.raises(ConfigError, match="unknown config key"):
            _ = j.config.nothing
        assert "steps" in dir(j.config.counter)


def test_quick_runs_like_the_cli_and_saves_a_runnable_yaml(tmp_path):
    with quick("test/counter", tmp_path / "out", "q") as j:
        j.config.counter.steps = 4
        j.config.checkpoint.every_steps = 2
        outcome = j()
        path = j.save(tmp_path / "run.yaml", chip="h100", n_chips=4)
    assert outcome.exit_code == 0 and outcome.state == "completed"
    run = tmp_path / "out/runs/default/default/q"
    assert json.loads((run / "status.json").read_text())["step"] == 4
    data = yaml.safe_load(path.read_text())
    assert data["job"] == "test/counter" and data["request"] == {"chip": "h100", "n_chips": 4}
    run_cli("run", "again", str(path), str(tmp_path / "out2"), "--load", COUNTER, check=True)
    a = json.loads((run / "results/final.json").read_text())
    b = json.loads((tmp_path / "out2/runs/default/default/again/results/final.json").read_text())
    assert a == b
