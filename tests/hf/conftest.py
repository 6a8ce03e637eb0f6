"""Fixtures for the Hugging Face tests: a tiny tokenizer and one tiny random checkpoint per family."""

from __future__ import annotations

import pytest
from hfhelp import make_checkpoint, write_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A byte-level BPE (``tokenizer.json`` + ``tokenizer_config.json`` with a ChatML-style template)."""
    return write_tokenizer(tmp_path_factory.mktemp("hf_tokenizer"))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tokenizer_dir):
    """``checkpoint(family)``: the folder of a tiny random checkpoint of ``family`` (made once per session)."""
    made = {}

    def get(family: str):
        if family not in made:
            made[family] = make_checkpoint(family, tmp_path_factory.mktemp(family), tokenizer_dir)
        return made[family]

    return get
