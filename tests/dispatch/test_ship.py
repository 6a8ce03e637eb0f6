"""The code bundle: unpacked alone on PYTHONPATH it registers the same jobs as here (files, packages, plugins)."""

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

JOB = textwrap.dedent(
    """
    from dataclasses import dataclass
    from theseus.config import field
    from theseus.job import BasicJob
    from theseus.registry import JOBS
    {extra}

    @dataclass
    class Cfg:
        n: int = field("{section}/n", default=1)

    class Job(BasicJob[Cfg]):
        \"\"\"{doc}\"\"\"
        CONFIG = Cfg
        def run(self) -> None:
            pass

    JOBS["{key}"] = Job
    """
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_bundle_carries_load_files_with_their_helpers_packages_and_plugins(tmp_path):
    site = tmp_path / "site"  # stands for this machine's installed packages
    # a plugin package with its entry point, as `pip install` would leave it
    _write(site / "myplug/__init__.py", JOB.format(extra="", section="plug", doc="from a plugin", key="plug/job"))
    _write(site / "myplug-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: myplug\nVersion: 1.0\n")
    _write(site / "myplug-1.0.dist-info/entry_points.txt", "[theseus.plugins]\nmyplug = myplug\n")
    # a package named with --load mylab.jobs
    _write(site / "mylab/__init__.py", "")
    _write(site / "mylab/jobs.py", JOB.format(extra="from mylab import util", section="lab", doc="from a package", key="lab/job"))
    _write(site / "mylab/util.py", "VALUE = 1\n")
    # a file given with --load exp/my_jobs.py that imports a module beside it
    _write(tmp_path / "exp/helper.py", "NAME = 'file/job'\n")
    _write(tmp_path / "exp/my_jobs.py", JOB.format(extra="from helper import NAME", section="mine", doc="from a file", key="file/job"))
    _write(tmp_path / "exp/unrelated.py", "raise SystemExit('never imported, never shipped')\n")

    bundle_tar = tmp_path / "bundle.tar"
    code = textwrap.dedent(
        f"""
        from theseus.dispatch.ship import build_bundle
        from theseus.registry import load_module
        loads = ["exp/my_jobs.py", "mylab.jobs"]
        for spec in loads:
            load_module(spec)
        bundle = build_bundle(loads)
        print(bundle.loads)
        open({str(bundle_tar)!r}, "wb").write(bundle.tar())
        """
    )
    made = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{site}", "PATH": "/usr/bin:/bin"})
    assert made.returncode == 0, made.stderr
    assert "['loads/0/my_jobs.py', 'mylab.jobs']" in made.stdout
    with tarfile.open(fileobj=io.BytesIO(bundle_tar.read_bytes())) as tar:
        names = tar.getnames()
    assert "loads/0/helper.py" in names and "loads/0/unrelated.py" not in names
    assert {"mylab/jobs.py", "mylab/util.py", "myplug/__init__.py", "theseus/cli.py"} <= set(names)

    remote = tmp_path / "remote"  # the bundle alone, as the remote sees it
    remote.mkdir()
    with tarfile.open(bundle_tar) as tar:
        tar.extractall(remote, filter="data")
    listed = subprocess.run(
        [sys.executable, "-m", "theseus.cli", "jobs", "--load", str(remote / "loads/0/my_jobs.py"), "--load", "mylab.jobs"],
        cwd=remote, capture_output=True, text=True, env={"PYTHONPATH": str(remote), "PATH": "/usr/bin:/bin"},
    )
    assert listed.returncode == 0, listed.stderr
    for key, doc in (("plug/job", "from a plugin"), ("lab/job", "from a package"), ("file/job", "from a file")):
        assert key in listed.stdout and doc in listed.stdout, listed.stdout
