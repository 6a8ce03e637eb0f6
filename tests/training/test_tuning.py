"""Process tuning: glibc tunables merged without overriding the user's, applied by re-executing once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from theseus.base.tuning import GLIBC_TUNABLES, command_of, merge_tunables, tuned_environment

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")


def test_user_tunables_are_kept_and_ours_appended() -> None:
    assert merge_tunables("", {"a.b": "1"}) == "a.b=1"
    assert merge_tunables("x.y=2", {"a.b": "1"}) == "x.y=2:a.b=1"
    assert merge_tunables("a.b=0:x.y=2", {"a.b": "1"}) == "a.b=0:x.y=2"  # the user's value wins


@pytest.mark.skipif(not GLIBC, reason="the allocator tunables are glibc's")
def test_tuned_environment_adds_the_tunables_unless_turned_off() -> None:
    env = tuned_environment({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["PATH"] == "/bin"
    assert env["GLIBC_TUNABLES"].split(":")[0] == "glibc.malloc.arena_max=2"
    assert all(f"{k}={v}" in env["GLIBC_TUNABLES"].split(":") for k, v in GLIBC_TUNABLES.items())
    assert "GLIBC_TUNABLES" not in tuned_environment({"THESEUS_TUNING": "0"})


def test_only_computing_commands_are_tuned() -> None:
    assert command_of(["theseus", "-v", "run", "name", "a.yaml", "out"]) == "run"
    assert command_of(["theseus", "--help"]) is None


@pytest.mark.skipif(not GLIBC, reason="the allocator tunables are glibc's")
def test_a_computing_command_reexecutes_itself_once_with_the_same_pid() -> None:
    code = (
        "import os, sys\n"
        "from theseus.base.tuning import reexec_tuned\n"
        "print(os.getpid(), os.environ.get('GLIBC_TUNABLES'), flush=True)\n"
        "reexec_tuned(['theseus', sys.argv[1]])\n"
        "print('done', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "THESEUS_TUNING")}
    ran = subprocess.run([sys.executable, "-c", code, "run"], env=env, capture_output=True, text=True, check=True)
    first, second, done = ran.stdout.splitlines()
    assert first.split()[0] == second.split()[0] and first.split()[1] == "None"
    assert "glibc.malloc.hugetlb=1" in second and done == "done"
    listed = subprocess.run([sys.executable, "-c", code, "ls"], env=env, capture_output=True, text=True, check=True)
    assert len(listed.stdout.splitlines()) == 2  # not re-executed
