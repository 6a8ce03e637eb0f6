"""The tokenization jobs in process: exact output, idempotence, refusals, torn writes, bad input."""

import json
import logging

import numpy as np
import pytest
from datahelp import run_tokenize, write_corpus, write_ranks

from theseus.data import output as output_module
from theseus.data import tokenize as tokenize_module
from theseus.data.byte_tokenizer import ByteTokenizer
from theseus.data.encoding import is_validation
from theseus.data.tokenize import TokenizeBlockwiseDatasetJob, TokenizeVariableDatasetJob
from theseus.errors import TheseusError

VARIABLE = TokenizeVariableDatasetJob
BLOCKWISE = TokenizeBlockwiseDatasetJob


def files_of(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix == ".bin"}


def text_files(glob, *more):
    return ("data.dataset=text_files", f"data.text_files.paths=[{glob}]", *more)


def test_variable_output_is_each_document_then_eot(tmp_path):
    glob, docs = write_corpus(tmp_path / "corpus", n=60)
    run_tokenize(VARIABLE, tmp_path / "out", *text_files(glob, "data.val_fraction=0.2", "data.workers=1"))
    directory = tmp_path / "out" / "data" / "text_files"
    tok = ByteTokenizer()
    expected = {False: [], True: []}
    for doc in docs:
        expected[is_validation(doc, 0, 0.2)] += [*tok.encode(doc), tok.eot_id]
    train = np.fromfile(directory / "train.bin", dtype=np.uint16)
    val = np.fromfile(directory / "val.bin", dtype=np.uint16)
    assert train.tolist() == expected[False] and val.tolist() == expected[True]
    assert 0 < len(val) < len(train)
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["format"] == "variable" and meta["dtype"] == "uint16" and meta["documents"] == 60
    assert meta["train"]["tokens"] == len(train) and meta["val"]["tokens"] == len(val)
    assert meta["train"]["documents"] + meta["val"]["documents"] == 60
    assert meta["tokenizer"] == tok.identity() and meta["eot_id"] == 256 and meta["vocab_size"] == 259
    assert meta["split"]["val_fraction"] == 0.2 and "sha256" in meta["split"]["rule"]
    assert meta["dataset_config"]["paths"] == [glob]
    assert not (directory / "progress.json").exists()


def test_two_workers_write_the_same_bytes_as_one(tmp_path, hf_dir):
    glob, _ = write_corpus(tmp_path / "corpus", n=120)
    common = text_files(
        glob, "tokenizer.backend=huggingface", f"tokenizer.path={hf_dir}", "data.chunk_chars=3000"
    )
    run_tokenize(VARIABLE, tmp_path / "one", *common, "data.workers=1")
    run_tokenize(VARIABLE, tmp_path / "two", *common, "data.workers=2")
    one = files_of(tmp_path / "one" / "data" / "text_files")
    assert one == files_of(tmp_path / "two" / "data" / "text_files")
    assert len(one["train.bin"]) > 1000


def test_rerun_is_a_noop_and_another_config_is_refused(tmp_path, ranks_file, caplog):
    glob, _ = write_corpus(tmp_path / "corpus", n=30)
    out = tmp_path / "out"
    run_tokenize(VARIABLE, out, *text_files(glob, "data.workers=1"), name="first")
    directory = out / "data" / "text_files"
    stamp = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    with caplog.at_level(logging.INFO, logger="theseus"):
        run_tokenize(VARIABLE, out, *text_files(glob, "data.workers=1"), name="second")
    assert "nothing to do" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamp
    other = ("tokenizer.backend=tiktoken", f"tokenizer.path={ranks_file}")
    with pytest.raises(TheseusError, match=r"another config \(tokenizer\.") as err:
        run_tokenize(VARIABLE, out, *text_files(glob, *other), name="third")
    assert "data.suffix" in str(err.value)
    run_tokenize(VARIABLE, out, *text_files(glob, *other, "data.suffix=tiny"), name="fourth")
    assert (
        json.loads((out / "data" / "text_files_tiny" / "meta.json").read_text())["tokenizer"]["backend"]
        == "tiktoken"
    )
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamp


def test_a_torn_write_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    glob, _ = write_corpus(tmp_path / "corpus", n=100)
    args = text_files(glob, "data.chunk_chars=2000", "data.workers=1")
    run_tokenize(VARIABLE, tmp_path / "ref", *args)
    monkeypatch.setattr(tokenize_module, "COMMIT_EVERY_S", 0.0)  # commit after every chunk
    real_commit = output_module.TokenizedOutput.commit
    calls = {"n": 0}

    def dying_commit(self, counters):
        calls["n"] += 1
        if calls["n"] == 4:  # chunk 4 is appended but never committed
            raise RuntimeError("power cut")
        real_commit(self, counters)

    monkeypatch.setattr(output_module.TokenizedOutput, "commit", dying_commit)
    with pytest.raises(RuntimeError, match="power cut"):
        run_tokenize(VARIABLE, tmp_path / "out", *args)
    directory = tmp_path / "out" / "data" / "text_files"
    progress = json.loads((directory / "progress.json").read_text())
    assert (directory / "train.bin").stat().st_size > progress["bytes"]["train.bin"]  # torn tail on disk
    assert not (directory / "meta.json").exists()
    monkeypatch.setattr(output_module.TokenizedOutput, "commit", real_commit)
    run_tokenize(VARIABLE, tmp_path / "out", *args)
    assert files_of(directory) == files_of(tmp_path / "ref" / "data" / "text_files")


def test_blockwise_rows_truncation_padding_and_masks(tmp_path):
    docs = ["short one", "x" * 40 + "END", "START" + "y" * 40]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    base = text_files(
        tmp_path / "docs.jsonl", "architecture.block_size=16", "data.val_fraction=0", "data.workers=1"
    )
    run_tokenize(BLOCKWISE, tmp_path / "right", *base)
    run_tokenize(BLOCKWISE, tmp_path / "left", *base, "data.truncation_side=left")
    tok = ByteTokenizer()
    for side in ("right", "left"):
        directory = tmp_path / side / "data" / "text_files"
        rows = np.fromfile(directory / "train.bin", dtype=np.uint16).reshape(-1, 17)
        mask = np.fromfile(directory / "train.mask.bin", dtype=np.uint8).reshape(-1, 17)
        meta = json.loads((directory / "meta.json").read_text())
        assert rows.shape == (3, 17) and meta["row_length"] == 17 and meta["truncated_documents"] == 2
        short = [*tok.encode("short one"), 256]
        assert rows[0].tolist() == short + [256] * (17 - len(short))
        assert mask[0].tolist() == [1] * len(short) + [0] * (17 - len(short))
        assert mask[1].all() and mask[2].all()
        long_doc = [*tok.encode(docs[2]), 256]
        assert rows[2].tolist() == (long_doc[:17] if side == "right" else long_doc[-17:])
    assert tok.decode(
        np.fromfile(tmp_path / "left/data/text_files/train.bin", np.uint16)[17:34].tolist()
    ).endswith("END<|endoftext|>")


def test_blockwise_chats_learn_only_the_assistant_when_asked(tmp_path):
    chats = [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
        [{"role": "user", "content": "q" * 40}, {"role": "assistant", "content": "cut off"}],
    ]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in chats))
    base = (
        "data.dataset=text_files",
        f"data.text_files.paths=[{tmp_path / 'chats.jsonl'}]",
        "data.text_files.messages_field=messages",
        "architecture.block_size=40",
        "data.val_fraction=0",
        "data.workers=1",
    )
    run_tokenize(BLOCKWISE, tmp_path / "all", *base)
    run_tokenize(BLOCKWISE, tmp_path / "assistant", *base, "data.assistant_only=true")
    tok = ByteTokenizer()
    ids, chat_mask = tok.encode_chat(chats[0])
    everything = np.fromfile(tmp_path / "all/data/text_files/train.mask.bin", np.uint8).reshape(-1, 41)
    directory = tmp_path / "assistant" / "data" / "text_files"
    rows = np.fromfile(directory / "train.bin", np.uint16).reshape(-1, 41)
    mask = np.fromfile(directory / "train.mask.bin", np.uint8).reshape(-1, 41)
    assert len(everything) == 2 and everything[1].all()
    assert len(rows) == 1  # the second chat lost its whole answer to truncation: dropped
    assert rows[0, : len(ids)].tolist() == ids and mask[0, : len(ids)].tolist() == chat_mask
    assert tok.decode(rows[0][mask[0] == 1].tolist()) == "hello there<|im_end|>"
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["dropped_documents"] == 1 and meta["assistant_only"] is True


def test_vocabulary_too_large_for_uint16(tmp_path):
    fillers = [bytes([1, i >> 8, i & 255]) for i in range(65536 - 256 + 10)]
    big = write_ranks(tmp_path / "big.tiktoken", [*fillers, b"th", b"he"])
    glob, _ = write_corpus(tmp_path / "corpus", n=10)
    tiktoken = ("tokenizer.backend=tiktoken", f"tokenizer.path={big}", "data.workers=1")
    with pytest.raises(TheseusError, match=r"data\.dtype=uint16 holds ids below 65536"):
        run_tokenize(VARIABLE, tmp_path / "out", *text_files(glob, *tiktoken, "data.dtype=uint16"))
    assert not (tmp_path / "out" / "data" / "text_files").exists()
    run_tokenize(VARIABLE, tmp_path / "out", *text_files(glob, *tiktoken), name="auto")
    directory = tmp_path / "out" / "data" / "text_files"
    assert json.loads((directory / "meta.json").read_text())["dtype"] == "uint32"
    ids = np.fromfile(directory / "train.bin", dtype=np.uint32)
    assert ids.max() > 65535 and 65536 - 256 + 10 + 256 in ids  # the "th" merge


def test_empty_and_validation_only_datasets(tmp_path):
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(TheseusError, match="yielded no documents"):
        run_tokenize(
            VARIABLE, tmp_path / "out", *text_files(tmp_path / "blank.txt", "data.text_files.split_on=line")
        )
    assert not (tmp_path / "out" / "data" / "text_files").exists()
    glob, _ = write_corpus(tmp_path / "corpus", n=5)
    with pytest.raises(TheseusError, match="every document went to validation"):
        run_tokenize(VARIABLE, tmp_path / "out", *text_files(glob, "data.val_fraction=1.0"), name="v")


def test_unknown_dataset_bad_options_and_max_documents(tmp_path):
    with pytest.raises(TheseusError, match="did you mean shakespeare"):
        run_tokenize(VARIABLE, tmp_path / "out", "data.dataset=shakespear")
    with pytest.raises(TheseusError, match="data.val_fraction must be >= 0 and <= 1, got 1.5"):
        run_tokenize(VARIABLE, tmp_path / "out", "data.val_fraction=1.5", name="f")
    glob, docs = write_corpus(tmp_path / "corpus", n=20)
    run_tokenize(
        VARIABLE, tmp_path / "out", *text_files(glob, "data.max_documents=7", "data.val_fraction=0"), name="m"
    )
    meta = json.loads((tmp_path / "out" / "data" / "text_files" / "meta.json").read_text())
    assert meta["documents"] == 7 and meta["train"]["tokens"] == sum(len(d.encode()) + 1 for d in docs[:7])


def test_a_second_writer_of_the_same_directory_is_refused(tmp_path):
    glob, _ = write_corpus(tmp_path / "corpus", n=5)
    with (
        output_module.locked(tmp_path / "out" / "data" / "text_files"),
        pytest.raises(TheseusError, match="another process is writing"),
    ):
        run_tokenize(VARIABLE, tmp_path / "out", *text_files(glob, "data.workers=1"))
