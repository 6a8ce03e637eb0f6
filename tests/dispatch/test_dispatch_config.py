"""The dispatch config, the request section and `submit --dry-run`: everything decided before contact.

No infrastructure needed: the hosts here do not exist, so any attempt to reach one would fail.
"""

import re

import pytest
import yaml
from clihelp import run_cli
from dispatchhelp import COUNTER

from theseus.dispatch.config import load_dispatch_config, parse_dispatch_config
from theseus.dispatch.plan import parse_time
from theseus.errors import ConfigError, TheseusError
from theseus.quick import quick
from theseus.request import Request, request_section

NOWHERE = {
    "hosts": {
        "gpu1": {"ssh": "nobody@nowhere.invalid", "work": "~/w", "out": "/data/out", "chips": {"h100": 8}},
        "gpu2": {"ssh": "nobody@nowhere2.invalid", "work": "~/w", "out": "/data/out", "chips": {"h100": 8}},
    },
    "clusters": {
        "big": {"login": "nobody@login.invalid", "work": "/shared/w", "out": "/shared/out",
                "gres": {"h100": "gpu:h100"}, "partitions": ["gpu"], "account": "lab", "sbatch": ["--mem=8G"]},
    },
}


@pytest.fixture
def box(tmp_path):
    cfg = tmp_path / "dispatch.yaml"
    cfg.write_text(yaml.safe_dump(NOWHERE))
    job = tmp_path / "c.yaml"
    run_cli("configure", "test/counter", str(job), "--load", COUNTER, check=True)
    env = {"THESEUS_HOME": str(tmp_path / "home"), "THESEUS_DISPATCH_CONFIG": str(cfg)}

    def cli(*args):
        return run_cli(*args, env=env)

    return cli, job, tmp_path


def _one_line(proc):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# ---------------------------------------------------------------------------- the dispatch config


def test_unknown_key_gets_did_you_mean_and_a_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key pyhton in hosts.a of .*\(did you mean python\?\)"):
        parse_dispatch_config({"hosts": {"a": {"ssh": "a", "work": "/w", "out": "/o", "pyhton": "python3"}}})
    with pytest.raises(ConfigError, match=r"config key chips expects dict\[str, int\], got 'eight' \(str\) in hosts.a"):
        parse_dispatch_config({"hosts": {"a": {"ssh": "a", "work": "/w", "out": "/o", "chips": "eight"}}})
    with pytest.raises(ConfigError, match=r"unknown key host in .* \(did you mean hosts\?\)"):
        parse_dispatch_config({"host": {}})
    with pytest.raises(ConfigError, match=r"unknown config key environment.extra in clusters.c .*did you mean environment.extras"):
        parse_dispatch_config({"clusters": {"c": {"work": "/w", "out": "/o", "environment": {"extra": ["cuda12"]}}}})
    with pytest.raises(ConfigError, match=r"hosts.a in .* needs ssh"):
        parse_dispatch_config({"hosts": {"a": {"work": "/w", "out": "/o"}}})
    with pytest.raises(TheseusError, match=r"hosts.a.work must be an absolute path or start with ~/"):
        parse_dispatch_config({"hosts": {"a": {"ssh": "a", "work": "w", "out": "/o"}}})
    with pytest.raises(TheseusError, match=r"host name 'a;b' may hold only"):
        parse_dispatch_config({"hosts": {"a;b": {"ssh": "a", "work": "/w", "out": "/o"}}})
    with pytest.raises(TheseusError, match=r"environment variable name 'A-B'"):
        parse_dispatch_config({"hosts": {"a": {"ssh": "a", "work": "/w", "out": "/o", "env": {"A-B": "1"}}}})


def test_the_shipped_example_is_a_valid_config():
    from pathlib import Path

    import theseus.dispatch

    example = Path(theseus.dispatch.__file__).with_name("example.yaml")
    cfg = load_dispatch_config(example)
    assert cfg.hosts["gpu1"].chips == {"h100": 8} and cfg.clusters["big"].gres == {"h100": "gpu:h100"}


def test_unknown_host_or_cluster_and_missing_config_are_one_line(box):
    cli, job, tmp = box
    assert "no host or cluster 'gpu3'" in _one_line(cli("submit", "r", str(job), "--host", "gpu3", "--load", COUNTER))
    assert "(did you mean big?)" in _one_line(cli("submit", "r", str(job), "--cluster", "bgi", "--load", COUNTER))
    line = _one_line(cli("submit", "r", str(job), "--load", COUNTER, "--dispatch-config", str(tmp / "none.yaml")))
    assert "no dispatch config at" in line and "example.yaml" in line


def test_bad_requests_are_refused_before_any_contact(box):
    cli, job, _ = box
    from theseus.dispatch.dispatch import plan
    from theseus.registry import load_module

    load_module(COUNTER)
    dispatch = parse_dispatch_config(NOWHERE)
    cases = [
        (dict(target="gpu1", hosts=["gpu2"]), "not both"),
        (dict(hosts=["gpu1"], chip="a100", n_chips=1), "cannot give 1 x a100"),
        (dict(target="big", chip="a100", n_chips=1), "no GRES mapping for chip a100"),
        (dict(target="big", partition="gpuu"), "not one of cluster big's partitions"),
        (dict(target="big", time_limit="soon"), "not a time limit"),
        (dict(hosts=["gpu1"], tasks_per_node=2), "--tasks-per-node is for SLURM"),
        (dict(hosts=["gpu1"], env={"A B": "1"}), "environment variable name 'A B'"),
        (dict(target="big", nodes=3, chip="h100", n_chips=16), "16 chips do not split evenly over 3 nodes"),
        (dict(hosts=["gpu1"], overrides=["counter.stpes=3"]), "did you mean counter.steps"),
    ]
    for kwargs, fragment in cases:
        overrides = kwargs.pop("overrides", [])
        with pytest.raises(TheseusError, match=re.escape(fragment)):
            plan("r", str(job), overrides, dispatch_config=dispatch, **kwargs)
    # and through the CLI: one line, exit 2
    assert "--tasks-per-node is for SLURM" in _one_line(
        cli("submit", "r", str(job), "--host", "gpu1", "--tasks-per-node", "2", "--load", COUNTER)
    )


# ---------------------------------------------------------------------------- dry run


def test_dry_run_to_a_cluster_prints_the_sbatch_script_and_contacts_nothing(box):
    cli, job, tmp = box
    proc = cli("submit", "dry", str(job), "--cluster", "big", "--chip", "h100", "-n", "16", "--nodes", "2",
               "--time", "1-00:00:00", "--partition", "gpu", "--env", "TOKEN=hunter2", "--fresh", "--load", COUNTER, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    for directive in ("#SBATCH --job-name=theseus-dry", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8",
                      "#SBATCH --gres=gpu:h100:8", "#SBATCH --time=1-00:00:00", "#SBATCH --partition=gpu",
                      "#SBATCH --account=lab", "#SBATCH --requeue", "#SBATCH --signal=USR1@120", "#SBATCH --mem=8G"):
        assert directive in proc.stdout, directive
    assert "srun --kill-on-bad-exit=0 /shared/w/envs/" in proc.stdout
    assert 'if [ "$attempt" = 0 ]; then fresh=(--fresh); fi' in proc.stdout  # a requeue must not start over
    assert "TOKEN='<hidden>'" in proc.stdout and "hunter2" not in proc.stdout
    assert "request:\n  chip: h100\n  n_chips: 16" in proc.stdout
    assert not (tmp / "home" / "submissions").exists()


def test_dry_run_to_two_hosts_names_the_coordinator(box):
    cli, job, _ = box
    proc = cli("submit", "dry", str(job), "--nodes", "2", "--chip", "h100", "-n", "8", "--time", "2:00:00",
               "--load", COUNTER, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "timeout --foreground --signal=USR1 --kill-after=60 7200 " in proc.stdout  # the limit: save, exit 75
    assert "host gpu1 (nobody@nowhere.invalid), gpu2 (nobody@nowhere2.invalid)" in proc.stdout
    assert "THESEUS_COORDINATOR_ADDRESS='nowhere.invalid:<free port" in proc.stdout
    assert "export THESEUS_PROCESS_ID=1" in proc.stdout
    assert "export CUDA_VISIBLE_DEVICES=0,1,2,3" in proc.stdout  # 4 of each host's 8 chips


def test_run_names_with_shell_metacharacters_are_refused(box, tmp_path):
    cli, job, _ = box
    marker = tmp_path / "pwned"
    line = _one_line(cli("submit", f"a;touch {marker}", str(job), "--host", "gpu1", "--load", COUNTER, "--dry-run"))
    assert "may hold only letters, digits" in line
    assert not marker.exists()


# ---------------------------------------------------------------------------- the request section


def test_request_section_has_one_rule_for_cpu_runs(tmp_path):
    assert request_section({}, "h100", 0) == {"chip": None, "n_chips": 0}
    assert request_section({"chip": "a100"}, None, 4) == {"chip": "a100", "n_chips": 4}
    assert Request.from_tree({"chip": "h100"}) == Request("h100", 1)
    assert Request.from_tree(None).cpu
    assert Request.from_tree({"chip": "h100", "n_chips": 8}).with_overrides(n_chips=0).cpu
    assert Request().with_overrides(chip="h100") == Request("h100", 1)
    with pytest.raises(ConfigError, match="no request.chip says which chip"):
        Request.from_tree({"n_chips": 2})
    with pytest.raises(ConfigError, match="unknown key request.chips"):
        Request.from_tree({"chips": 2})
    with pytest.raises(ConfigError, match="whole number >= 0"):
        request_section({}, None, -1)
    # configure and quick write the same section for the same request
    cli_yaml = tmp_path / "cli.yaml"
    run_cli("configure", "test/counter", str(cli_yaml), "--chip", "h100", "-n", "0", "--load", COUNTER, check=True)
    from theseus.registry import load_module

    load_module(COUNTER)
    with quick("test/counter", tmp_path, "q") as j:
        path = j.save(tmp_path / "quick.yaml", chip="h100", n_chips=0)
    assert yaml.safe_load(cli_yaml.read_text())["request"] == yaml.safe_load(path.read_text())["request"]
    assert yaml.safe_load(path.read_text())["request"] == {"chip": None, "n_chips": 0}


def test_time_limits_in_slurm_formats():
    assert parse_time("30") == 1800
    assert parse_time("1:30") == 90
    assert parse_time("2:00:00") == 7200
    assert parse_time("1-12") == 129600
    assert parse_time("1-00:00:10") == 86410
    with pytest.raises(TheseusError):
        parse_time("1h")


def test_help_lists_the_remote_commands():
    out = run_cli("--help", check=True).stdout
    for command in ("submit", "cancel", "pull"):
        assert command in out


def test_a_cluster_without_login_runs_its_scripts_here():
    from theseus.dispatch.ssh import Remote, RemoteError

    result = Remote(None, label="cluster here").run("echo theseus-answer: $((6 * 7))")
    assert result.markers() == {"answer": "42"}
    with pytest.raises(RemoteError, match=r"cluster here \(this machine\): no sbatch here"):
        Remote(None, label="cluster here").run("echo 'theseus-error: no sbatch here' >&2; exit 3")
