"""Every built-in dataset, offline: the shipped Shakespeare texts, local files, and hub loaders on local files."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datahelp import sentences

from theseus.config import build, configuration, patch
from theseus.data.datasets import Dataset, dataset_config_classes, open_dataset
from theseus.data.datasets import shakespeare as shakespeare_module
from theseus.data.datasets import text_files as text_files_module
from theseus.data.datasets.alpaca import Alpaca, AlpacaConfig
from theseus.data.datasets.fineweb import FineWeb, FineWebConfig
from theseus.data.datasets.huggingface import HuggingFace, HuggingFaceConfig
from theseus.data.datasets.shakespeare import Shakespeare, ShakespeareConfig, strip_gutenberg
from theseus.data.datasets.text_files import TextFiles, TextFilesConfig
from theseus.data.datasets.tinystories import TinyStories, TinyStoriesConfig
from theseus.errors import TheseusError
from theseus.registry import DATASETS

CHATS = [
    [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
    for i in range(5)
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ------------------------------------------------------------------ registry and config


def test_builtin_keys_and_did_you_mean():
    assert {"shakespeare", "text_files", "huggingface", "fineweb", "tinystories", "alpaca"} <= set(
        DATASETS.keys()
    )
    with pytest.raises(TheseusError, match="did you mean shakespeare"):
        DATASETS["shakespear"]


def test_dataset_options_come_from_the_config():
    cfg = build(*dataset_config_classes())  # no two datasets declare one key differently
    with configuration(cfg), patch() as p:
        p.data.shakespeare.edition = "folio"
        ds = open_dataset("shakespeare")
    assert isinstance(ds, Dataset) and ds.config.edition == "folio"
    assert all(f.name.endswith("_gut_f.txt") for f in ds.files)


# ------------------------------------------------------------------ shakespeare


def test_shakespeare_one_document_per_text():
    modern, folio, both = (Shakespeare(ShakespeareConfig(e)) for e in ("modern", "folio", "both"))
    assert len(modern) + len(folio) == len(both) == 77  # 78 files less metadata.txt
    assert len(modern) == 42 and modern.size_hint() == 42
    assert all(f.name != "metadata.txt" for f in both.files)
    hamlet = next(i for i, f in enumerate(modern.files) if f.name == "hamlet_gut.txt")
    text = modern[hamlet]
    assert text.startswith("HAMLET, PRINCE OF DENMARK") and "To be, or not to be" in text
    assert list(modern.iter_from(40)) == [modern[40], modern[41]]
    assert all("gutenberg" not in doc.lower() for doc in modern)


def test_gutenberg_boilerplate_is_stripped():
    raw = (
        "The Project Gutenberg EBook of Hamlet\r\nThis eBook is for the use of anyone\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\nACT I.\r\nWho's there?\r\n\r\n"
        "End of the Project Gutenberg EBook of Hamlet\r\nlicense text\r\n"
    )
    assert strip_gutenberg(raw) == "ACT I.\nWho's there?"
    assert strip_gutenberg("plain text\n") == "plain text"
    old_style = "Project Gutenberg Etext\nsmall print\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\nSONNET I\n"
    assert strip_gutenberg(old_style) == "SONNET I"


def test_shakespeare_texts_ship_inside_theseus_and_a_broken_copy_is_a_user_error(tmp_path, monkeypatch):
    assert shakespeare_module.ARCHIVE.parent == Path(shakespeare_module.__file__).parent
    for name, content in (("missing.tar.xz", None), ("garbage.tar.xz", b"not xz at all")):
        archive = tmp_path / name
        if content is not None:
            archive.write_bytes(content)
        monkeypatch.setattr(shakespeare_module, "ARCHIVE", archive)
        with pytest.raises(TheseusError, match=f"unreadable .*{name}.*reinstall theseus"):
            Shakespeare()


# ------------------------------------------------------------------ text_files


def test_text_files_split_modes(tmp_path, monkeypatch):
    a = tmp_path / "a.txt"
    a.write_text("one\ntwo\n\n\nthree\n  \nfour<SEP>five\n")
    b = tmp_path / "sub" / "b.txt"
    b.parent.mkdir()
    b.write_text("bee\n")

    def docs(**options):
        return list(TextFiles(TextFilesConfig(paths=[str(tmp_path / "**" / "*.txt")], **options)))

    assert docs() == [a.read_text(), "bee\n"]
    assert docs(split_on="line") == ["one", "two", "three", "four<SEP>five", "bee"]
    assert docs(split_on="blank_lines") == ["one\ntwo", "three", "four<SEP>five", "bee"]
    monkeypatch.setattr(text_files_module, "BLOCK_CHARS", 3)  # separators straddle read blocks
    assert docs(split_on="separator", separator="<SEP>") == ["one\ntwo\n\n\nthree\n  \nfour", "five", "bee"]


def test_text_files_jsonl_parquet_and_chats(tmp_path):
    rows = [{"body": s, "n": i} for i, s in enumerate(sentences(6))]
    write_jsonl(tmp_path / "part1.jsonl", rows[:3])
    write_parquet(tmp_path / "part2.parquet", rows[3:])
    ds = TextFiles(TextFilesConfig(paths=[str(tmp_path / "part*")], text_field="body"))
    assert ds.kind == "text" and list(ds) == [r["body"] for r in rows]
    assert list(ds.iter_from(4)) == [rows[4]["body"], rows[5]["body"]]
    write_jsonl(tmp_path / "chats.jsonl", [{"messages": c} for c in CHATS])
    chats = TextFiles(TextFilesConfig(paths=[str(tmp_path / "chats.jsonl")], messages_field="messages"))
    assert chats.kind == "chat" and list(chats) == CHATS


def test_text_files_errors(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"text": "ok"}, {"other": 1}])
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{not json\n')
    (tmp_path / "x.csv").write_text("a,b\n")
    write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user"}]}])
    cases = [
        (TextFilesConfig(paths=[]), "needs data.text_files.paths"),
        (TextFilesConfig(paths=[str(tmp_path / "missing*.txt")]), "matches no file"),
        (TextFilesConfig(paths=[str(tmp_path / "x.csv")]), "unsupported file type"),
        (TextFilesConfig(paths=[str(tmp_path / "x.jsonl")]), r"x.jsonl:2 has no field 'text'"),
        (TextFilesConfig(paths=[str(tmp_path / "bad.jsonl")]), r"bad.jsonl:2 is not valid JSON"),
        (TextFilesConfig(paths=[str(tmp_path / "chat.jsonl")], messages_field="messages"), "no 'content'"),
    ]
    for cfg, message in cases:
        with pytest.raises(TheseusError, match=message):
            list(TextFiles(cfg))


# ------------------------------------------------------------------ datasets.load_dataset on local files


def test_huggingface_text_and_chat_columns(tmp_path):
    rows = [{"text": s, "messages": c} for s, c in zip(sentences(5), CHATS)]
    files = [str(write_parquet(tmp_path / "d.parquet", rows))]
    text = HuggingFace(HuggingFaceConfig(data_files=files))
    assert text.kind == "text" and list(text) == [r["text"] for r in rows] and text.size_hint() == 5
    assert list(text.iter_from(3)) == [rows[3]["text"], rows[4]["text"]]
    chats = HuggingFace(HuggingFaceConfig(data_files=files, messages_field="messages", streaming=True))
    assert chats.kind == "chat" and chats.size_hint() is None
    assert list(chats) == CHATS and list(chats.iter_from(4)) == CHATS[4:]
    missing = HuggingFace(HuggingFaceConfig(data_files=files, text_field="body"))
    with pytest.raises(TheseusError, match="no column 'body'"):
        list(missing)


def test_huggingface_path_of_a_local_builder(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"text": "alpha"}, {"text": "beta"}])
    ds = HuggingFace(HuggingFaceConfig(path=str(tmp_path), split="train"))
    assert list(ds) == ["alpha", "beta"]


def test_named_hub_datasets_read_local_files(tmp_path):
    stories = sentences(4)
    web = write_parquet(
        tmp_path / "web.parquet", [{"text": s, "id": str(i), "url": "u"} for i, s in enumerate(stories)]
    )
    tiny = write_jsonl(tmp_path / "tiny.jsonl", [{"text": s} for s in stories])
    alpaca = write_jsonl(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
            {"instruction": "Say hi.", "input": "", "output": "hi"},
        ],
    )
    assert list(FineWeb(FineWebConfig(data_files=[str(web)]))) == stories  # streaming by default
    assert list(TinyStories(TinyStoriesConfig(data_files=[str(tiny)]))) == stories
    chats = list(Alpaca(AlpacaConfig(data_files=[str(alpaca)])))
    assert chats == [
        [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}],
        [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}],
    ]


def test_hub_datasets_offline_say_how_to_use_local_files(tmp_path):
    for cls, key in ((FineWeb, "fineweb"), (TinyStories, "tinystories"), (Alpaca, "alpaca")):
        with pytest.raises(TheseusError, match=rf"data\.{key}\.data_files"):
            cls()
    with pytest.raises(TheseusError, match="matches no file"):
        TinyStories(TinyStoriesConfig(data_files=[str(tmp_path / "nothing-*.jsonl")]))
    with pytest.raises(TheseusError, match="needs data.huggingface.path"):
        HuggingFace()
