"""data/train_tokenizer: a small byte-level BPE trained offline, loaded by the huggingface backend."""

import json
import logging

import numpy as np
import pytest
from datahelp import run_tokenize, write_corpus

from theseus.data.tokenize import TokenizeVariableDatasetJob
from theseus.data.tokenizer import TokenizerConfig, get_tokenizer
from theseus.data.train_tokenizer import TrainTokenizerJob
from theseus.errors import TheseusError


def test_train_then_tokenize_with_the_result(tmp_path, caplog):
    glob, docs = write_corpus(tmp_path / "corpus", n=80)
    data = ("data.dataset=text_files", f"data.text_files.paths=[{glob}]")
    out = tmp_path / "OUT"
    run_tokenize(TrainTokenizerJob, out, *data, "train_tokenizer.vocab_size=300", name="bpe")
    folder = out / "data" / "tokenizers" / "text_files_bpe300"
    assert {"tokenizer.json", "tokenizer_config.json", "theseus.json"} == {p.name for p in folder.iterdir()}

    tok = get_tokenizer(TokenizerConfig(backend="huggingface", path=str(folder)))
    assert tok.vocab_size == 300 and tok.decode(tok.encode(docs[0])) == docs[0]
    assert len(tok.encode(docs[0])) < 0.8 * len(docs[0].encode())  # merges were learned
    ids, mask = tok.encode_chat(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "the fox"}]
    )
    im_start, im_end = 298, 299  # ChatML markers are the last ids, after <|endoftext|> (297)
    assert tok.eot_id == 297 and ids[0] == im_start and ids.count(im_end) == 2
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "the fox<|im_end|>"

    with caplog.at_level(logging.INFO, logger="theseus"):
        run_tokenize(TrainTokenizerJob, out, *data, "train_tokenizer.vocab_size=300", name="bpe-again")
    assert "nothing to do" in caplog.text
    with pytest.raises(TheseusError, match="holds another tokenizer"):
        run_tokenize(
            TrainTokenizerJob,
            out,
            *data,
            "train_tokenizer.vocab_size=280",
            f"train_tokenizer.output={folder}",
            name="bpe-other",
        )

    run_tokenize(
        TokenizeVariableDatasetJob,
        out,
        *data,
        "tokenizer.backend=huggingface",
        f"tokenizer.path={folder}",
        "data.workers=1",
    )
    meta = json.loads((out / "data" / "text_files" / "meta.json").read_text())
    assert meta["vocab_size"] == 300 and meta["tokenizer"]["backend"] == "huggingface"
    ids = np.fromfile(out / "data" / "text_files" / "train.bin", dtype=np.uint16)
    assert ids.max() < 300 and (ids == meta["eot_id"]).sum() == meta["train"]["documents"]


def test_too_small_a_vocabulary_is_refused(tmp_path):
    glob, _ = write_corpus(tmp_path / "corpus", n=5)
    with pytest.raises(TheseusError, match="vocab_size must be >= 259, got 100"):
        run_tokenize(
            TrainTokenizerJob,
            tmp_path,
            "data.dataset=text_files",
            f"data.text_files.paths=[{glob}]",
            "train_tokenizer.vocab_size=100",
        )
    assert not (tmp_path / "data" / "tokenizers").exists()
