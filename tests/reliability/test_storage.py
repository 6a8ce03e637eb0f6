"""A disk that refuses: full (a real small tmpfs), read-only (a bind mount), or a path through a file
(issue 8, items 10 and 12). Each ends in one line naming the path and the cause, exit 2, a status that
is not left 'running', and nothing torn on disk."""

import errno
import json
import shutil
import subprocess

import pytest
from clihelp import run_cli
from relhelp import gpt_yaml, metrics, one_line_error, read_only, run_dir, status, tmpfs, tokenize, tree


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tokenize(tmp_path_factory.mktemp("storage"))


@pytest.fixture(scope="module")
def gpt(out):
    return gpt_yaml(out.parent / "storage-gpt.yaml", "training.steps=24", "checkpoint.every_steps=2",
                    "checkpoint.keep_last=20")


def _fill(directory):
    """Write until the file system has not one byte left."""
    with open(directory / "filler", "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def test_disk_full_during_training_is_one_line_and_the_run_resumes_once_there_is_room(out, gpt, tmp_path):
    from theseus.checkpoint import complete_steps, verify

    with tmpfs(tmp_path / "small", "1400k") as small:
        shutil.copytree(out / "data", small / "data")
        line = one_line_error(run_cli("run", "full", str(gpt), str(small)), "(ENOSPC)")
        assert str(small) in line
        assert status(small, "full")["state"] == "failed"
        ckpts = run_dir(small, "full") / "checkpoints"
        assert not [p for p in ckpts.iterdir() if "tmp" in p.name]  # a failed save leaves nothing behind
        for step in complete_steps(ckpts):
            assert verify(ckpts, step) is None
        subprocess.run(["mount", "-o", "remount,size=20m", str(small)], check=True)
        again = run_cli("run", "full", str(gpt), str(small), check=True)
        assert status(small, "full")["state"] == "completed", again.stderr
        assert [r["step"] for r in metrics(small, "full")] == list(range(2, 25, 2))


def test_disk_full_during_tokenization_is_one_line_and_not_left_running(out, tmp_path):
    cfg = out / "tok.yaml"
    with tmpfs(tmp_path / "tiny", "300k") as tiny:
        line = one_line_error(run_cli("run", "tok", str(cfg), str(tiny)), "No space left on device (ENOSPC)")
        assert "data/shakespeare/" in line
        assert status(tiny, "tok")["state"] == "failed"
        subprocess.run(["mount", "-o", "remount,size=4m", str(tiny)], check=True)
        run_cli("run", "tok", str(cfg), str(tiny), check=True)
        meta = json.loads((tiny / "data" / "shakespeare" / "meta.json").read_text())
        assert meta["content_sha256"] == json.loads((out / "data" / "shakespeare" / "meta.json").read_text())[
            "content_sha256"]  # the resumed tokenization wrote exactly the same bytes


def test_a_final_state_is_recorded_even_on_a_completely_full_disk(tmp_path):
    from theseus.fsio import write_json_even_when_full

    with tmpfs(tmp_path / "brim", "64k") as brim:
        (brim / "status.json").write_text(json.dumps({"state": "running"}))
        _fill(brim)
        write_json_even_when_full(brim / "status.json", {"state": "failed", "error": "disk full"})
        assert json.loads((brim / "status.json").read_text())["state"] == "failed"
        assert sorted(p.name for p in brim.iterdir()) == ["filler", "status.json"]


def test_a_read_only_out_is_one_line_for_run_tokenize_and_configure(out, gpt, tmp_path):
    with read_only(out, tmp_path / "ro") as ro:
        before = tree(ro)
        for args in (
            ("run", "ro-run", str(gpt), str(ro)),
            ("run", "ro-tok", str(out / "tok.yaml"), str(ro), "data.suffix=again"),
            ("configure", "gpt/train/pretrain", str(ro / "new.yaml")),
        ):
            one_line_error(run_cli(*args), "Read-only file system (EROFS)")
        assert tree(ro) == before


def test_out_below_a_regular_file_is_one_line(out, gpt, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    one_line_error(run_cli("run", "under-file", str(out / "tok.yaml"), str(blocker / "out")), "Not a directory")
    one_line_error(run_cli("run", "under-file", str(gpt), str(blocker / "out")), "no tokenized dataset")
    assert blocker.read_text() == "not a directory"
