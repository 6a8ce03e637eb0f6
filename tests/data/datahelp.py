"""Helpers for the data tests (plain functions; the fixtures are in conftest.py)."""

import base64
from pathlib import Path

from theseus.config import resolve

REGISTER = str(Path(__file__).with_name("register_jobs.py"))
REPO = Path(__file__).resolve().parents[2]

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "a",
    "tiny",
    "model",
    "learns",
    "to",
    "read",
    "shakespeare",
    "and",
    "then",
    "writes",
    "its",
    "own",
    "sonnets",
    "about",
    "tokens",
    "memmaps",
    "and",
    "gradients",
]

# a chat template unlike ChatML, to show the backend follows the tokenizer's own template
HEADER_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
HEADER_SPECIALS = [
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|endoftext|>",
]


def sentences(n, seed=0, length=12):
    """``n`` deterministic pseudo-sentences."""
    out = []
    for i in range(n):
        words = [
            WORDS[(seed * 7 + i * 13 + j * 5 + (i * j) % 11) % len(WORDS)] for j in range(length + i % 5)
        ]
        out.append(" ".join(words).capitalize() + ".")
    return out


def write_ranks(path, extra_tokens):
    """A ``.tiktoken`` ranks file: all 256 bytes, then ``extra_tokens`` (bytes) in order."""
    tokens = [bytes([b]) for b in range(256)] + list(extra_tokens)
    path.write_text("".join(f"{base64.b64encode(t).decode()} {rank}\n" for rank, t in enumerate(tokens)))
    return path


def job_config(job_cls, *overrides):
    """A resolved config for ``job_cls`` with ``key=value`` overrides."""
    return resolve(job_cls.config(), overrides=list(overrides))


def read_lines(path):
    """The non-empty lines of a text file."""
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def write_corpus(folder, n=80, seed=0):
    """A JSON-lines corpus of ``n`` documents of varied length; returns (glob, documents)."""
    import json

    docs = [" ".join(sentences(1 + (i * 7 + seed) % 9, seed=seed + i)) for i in range(n)]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return str(path), docs


def run_tokenize(job_cls, root, *overrides, name="tok"):
    """Run a job in this process as run ``name`` under ``root``."""
    from theseus.job import ExecutionSpec, run_job

    return run_job(job_cls, job_config(job_cls, *overrides), ExecutionSpec(name=name, root=Path(root)))


def run_cli(*args, env=None, timeout=300):
    """``theseus ARGS`` in a subprocess (this checkout first on the path)."""
    import os
    import subprocess
    import sys

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "theseus.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def start_cli(*args, env=None):
    """``theseus ARGS`` started in the background, in its own process group."""
    import os
    import subprocess
    import sys

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "theseus.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
    )


def write_job_yaml(path, key, job_cls, *overrides):
    """What `theseus configure KEY PATH OVERRIDES...` writes, made in this process."""
    from theseus.config import to_tree, to_yaml

    tree = to_tree(job_config(job_cls, *overrides))
    tree["job"] = key
    Path(path).write_text(to_yaml(tree))
    return Path(path)
