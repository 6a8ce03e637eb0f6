"""Fixtures for the data tests: tiny tokenizers and corpora written on the spot, all offline."""

import json
import os

import pytest
from datahelp import HEADER_SPECIALS, HEADER_TEMPLATE, sentences, write_ranks


@pytest.fixture(autouse=True, scope="session")
def _offline_hub_cache(tmp_path_factory):
    """Keep Hugging Face caches inside the test's temporary directory."""
    cache = tmp_path_factory.mktemp("hf")
    values = {
        "HF_HOME": str(cache),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
        "TIKTOKEN_CACHE_DIR": str(cache / "tiktoken"),
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def ranks_file(tmp_path_factory):
    """A small GPT-2-like ranks file with a few merges."""
    merges = [b"th", b"he", b"the", b" t", b" the", b"in", b"ng", b"ing", b" q", b"qu", b" qu", b"ck"]
    return write_ranks(tmp_path_factory.mktemp("tiktoken") / "tiny.tiktoken", merges)


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory):
    """A trained byte-level BPE with the test's own (non-ChatML) chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("hf_tokenizer")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(sentences(200) + ["user assistant system"] * 20, trainer)
    tok.add_special_tokens(HEADER_SPECIALS)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"bos_token": "<|begin_of_text|>", "eos_token": "<|endoftext|>", "chat_template": HEADER_TEMPLATE}
        )
    )
    return folder
