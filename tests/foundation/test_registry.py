"""Registries: did-you-mean, optional modules that fail, --load files, entry-point plugins."""

import subprocess
import sys
import textwrap

import pytest
from clihelp import REPO, run_cli

from theseus.errors import TheseusError
from theseus.registry import Registry


def test_unknown_key_suggests_closest():
    reg: Registry[int] = Registry("thing")
    reg["alpha/beta"] = 1
    assert reg["alpha/beta"] == 1
    with pytest.raises(TheseusError, match="did you mean alpha/beta"):
        reg["alpha/betta"]


def test_optional_block_records_failure_and_keeps_the_rest():
    reg: Registry[int] = Registry("thing")
    reg["ok"] = 1
    with reg.optional("needs/extra"):
        import not_installed_package_xyz  # noqa: F401

        reg["needs/extra"] = 2
    assert "ok" in reg and "needs/extra" not in reg
    assert "not_installed_package_xyz" in reg.broken["needs/extra"]
    with pytest.raises(TheseusError, match="unavailable: ModuleNotFoundError"):
        reg["needs/extra"]


def test_builtin_module_that_fails_is_reported_not_raised():
    reg: Registry[int] = Registry("thing", ("theseus.no_such_module_for_test",))
    assert reg.keys() == []
    assert "<theseus.no_such_module_for_test>" in reg.broken


def test_entry_point_plugin_registers_a_job(tmp_path):
    site = tmp_path / "site"
    pkg = site / "myplugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
        from dataclasses import dataclass
        from theseus.config import field
        from theseus.job import BasicJob
        from theseus.registry import JOBS

        @dataclass
        class Cfg:
            x: int = field("plugin/x", default=1)

        class PluginJob(BasicJob[Cfg]):
            """A job from an installed plugin."""
            CONFIG = Cfg
            def run(self):
                print("plugin ran", self.args.x)

        JOBS["plugin/hello"] = PluginJob
    ''')
    )
    dist = site / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[theseus.plugins]\nmyplugin = myplugin\n")
    bad = site / "badplugin-1.0.dist-info"
    bad.mkdir()
    (bad / "METADATA").write_text("Metadata-Version: 2.1\nName: badplugin\nVersion: 1.0\n")
    (bad / "entry_points.txt").write_text("[theseus.plugins]\nbadplugin = badplugin_missing_module\n")
    env = {"PYTHONPATH": f"{REPO}:{site}"}
    jobs = run_cli("jobs", env=env, check=True).stdout
    assert "plugin/hello" in jobs and "A job from an installed plugin" in jobs
    assert "plugin badplugin" in jobs and "failed to load" in jobs
    cfg = tmp_path / "p.yaml"
    run_cli("configure", "plugin/hello", str(cfg), "plugin.x=5", env=env, check=True)
    proc = run_cli("run", "p", str(cfg), str(tmp_path / "out"), env=env, check=True)
    assert "plugin ran 5" in proc.stdout


def test_load_accepts_a_module_name(tmp_path):
    (tmp_path / "usermod.py").write_text(
        textwrap.dedent('''
        from theseus.registry import JOBS
        from theseus.job import BasicJob
        class J(BasicJob):
            """User module job."""
            CONFIG = object
        JOBS["user/mod"] = J
    ''')
    )
    proc = run_cli("jobs", "--load", "usermod", cwd=tmp_path, check=True)
    assert "user/mod" in proc.stdout


def test_registry_import_is_cheap():
    out = subprocess.run(
        [sys.executable, "-c", "import theseus.registry, sys; print('jax' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert out.stdout.strip() == "False"
