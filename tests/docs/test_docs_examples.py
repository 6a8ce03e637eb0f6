"""Every shell and Python example of the documentation runs, so the docs cannot drift from the code.

Pages are run one per test, each in a fresh directory, blocks in page order (the markers
that skip a block, write it to a file, shrink its settings or prepare the directory are
described in docblocks.py). A page fails on the first block that exits non-zero.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import REPO, run_cli, tokenize_tiny_shakespeare
from docblocks import MarkerError, parse

DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
RUNNABLE = [page for page in PAGES if parse(page).runnable]
BLOCK_TIMEOUT = 300
DEMO_SETTINGS = [
    "architecture.vocab_size=320", "architecture.n_layers=1", "architecture.n_embd=32", "architecture.n_head=2",
    "architecture.block_size=256", "training.batch_size=8", "training.steps=4", "training.log_every=2",
    "training.val_every=4", "training.val_batches=1", "checkpoint.every_steps=2",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """An output root like the one `make demo` leaves, at a tiny scale: tokenized Shakespeare and `shakespeare-gpt`."""
    root = tmp_path_factory.mktemp("docs-demo") / "out"
    root.mkdir()
    tokenize_tiny_shakespeare(root, "tokenize-shakespeare")
    gpt = root / "gpt.yaml"
    run_cli("configure", "gpt/train/pretrain", str(gpt), *DEMO_SETTINGS, check=True)
    run_cli("run", "shakespeare-gpt", str(gpt), str(root), check=True)
    return root


def _environment(demo_root: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if demo_root is not None:
        env["THESEUS_DOCS_DEMO"] = str(demo_root)
    return env


def _run(argv, cwd, env, what):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(
            f"{what} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        )


@pytest.mark.parametrize("path", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_page_examples_run(path, tmp_path, request):
    page = parse(path)
    needs_demo = any("THESEUS_DOCS_DEMO" in command for command in page.setup)
    env = _environment(request.getfixturevalue("demo") if needs_demo else None)
    where = path.relative_to(REPO)
    for command in page.setup:
        _run(["bash", "-euo", "pipefail", "-c", command], tmp_path, env, f"{where} setup `{command}`")
    for n, block in enumerate(page.runnable):
        code = block.text()
        what = f"{where}:{block.line} ({block.lang})\n{code}"
        if block.file:
            target = tmp_path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a") as fh:
                fh.write(code)
        elif block.runner == "bash":
            _run(["bash", "-euo", "pipefail", "-c", code], tmp_path, env, what)
        else:
            script = tmp_path / f"_docs_block_{n}.py"
            script.write_text(code)
            _run([sys.executable, str(script)], tmp_path, env, what)


def test_markers_are_well_formed_and_every_skip_has_a_reason():
    assert len(RUNNABLE) >= 8, [str(p) for p in RUNNABLE]  # a parser that finds nothing must not pass
    for path in PAGES:
        try:
            page = parse(path)
        except MarkerError as exc:
            pytest.fail(str(exc))
        for block in page.blocks:
            if block.skip is not None:
                assert block.skip.strip(), f"{path}:{block.line}: skip without a reason"
            if block.file:
                assert block.runner, f"{path}:{block.line}: docs-test: file on a block that is not code"


def test_parser_reads_markers(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "intro\n<!-- docs-test: replace 300 => 3 -->\n"
        "<!-- docs-test: skip (needs a cluster) -->\n```bash\necho 300\n```\n"
        "text\n<!-- docs-test: file a.py -->\n```python\nx = 300\n```\n"
        "```yaml\na: 1\n```\n- item\n\n    ```bash\n    echo indented\n    ```\n"
        "<!-- docs-test: setup\ntouch ready -->\n"
    )
    parsed = parse(page)
    assert [b.lang for b in parsed.blocks] == ["bash", "python", "yaml", "bash"]
    skipped, written, _, indented = parsed.blocks
    assert skipped.skip == "needs a cluster" and written.file == "a.py" and written.text() == "x = 3\n"
    assert indented.code == "echo indented\n" and indented.skip is None
    assert parsed.setup == ["touch ready"]
    assert [b.line for b in parsed.runnable] == [9, 17]
