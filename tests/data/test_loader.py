"""The loader: pure-function batches, disjoint processes, epochs, mixtures, masks, validation, errors."""

import json
import threading

import numpy as np
import pytest
from datahelp import run_tokenize, write_corpus

from theseus.data.loader import BatchSampler, Prefetcher, TokenDataset, allocate, check_tokenizer, check_vocab
from theseus.data.tokenize import TokenizeVariableDatasetJob
from theseus.errors import TheseusError

T = 8


def make_variable(path, train, val, eot=0, vocab=1 << 20):
    """A variable-format dataset directory holding the given uint32 ids."""
    path.mkdir(parents=True)
    np.asarray(train, np.uint32).tofile(path / "train.bin")
    np.asarray(val, np.uint32).tofile(path / "val.bin")
    meta = {"format": "variable", "dtype": "uint32", "vocab_size": vocab, "eot_id": eot, "dataset": path.name}
    (path / "meta.json").write_text(json.dumps(meta))
    return TokenDataset.open(path)


def make_blockwise(path, rows, masks, block_size):
    path.mkdir(parents=True)
    for split in ("train", "val"):
        np.asarray(rows, np.uint16).tofile(path / f"{split}.bin")
        np.asarray(masks, np.uint8).tofile(path / f"{split}.mask.bin")
    meta = {
        "format": "blockwise",
        "dtype": "uint16",
        "vocab_size": 1000,
        "eot_id": 0,
        "dataset": path.name,
        "block_size": block_size,
        "row_length": block_size + 1,
    }
    (path / "meta.json").write_text(json.dumps(meta))
    return TokenDataset.open(path)


@pytest.fixture
def counting(tmp_path):
    """Tokens 0..n-1: a window's first token is its offset."""
    return make_variable(tmp_path / "counting", np.arange(40 * T + 5), np.arange(10**6, 10**6 + 6 * T + 1))


def test_a_batch_is_a_pure_function_of_seed_and_step(counting):
    first = BatchSampler(counting, batch_size=4, block_size=T, seed=1).batch(5)
    restarted = BatchSampler(counting, batch_size=4, block_size=T, seed=1)
    assert all((first[k] == restarted.batch(5)[k]).all() for k in first)
    assert not (first["x"] == restarted.batch(6)["x"]).all()
    assert not (first["x"] == BatchSampler(counting, batch_size=4, block_size=T, seed=2).batch(5)["x"]).all()
    assert first["x"].dtype == np.int32 and first["mask"].dtype == np.float32 and first["x"].shape == (4, T)
    np.testing.assert_array_equal(first["y"][:, :-1], first["x"][:, 1:])
    np.testing.assert_array_equal(first["y"][:, -1], first["x"][:, 0] + T)  # contiguous windows of T + 1


def test_processes_split_one_global_batch_without_overlap(counting):
    whole = BatchSampler(counting, batch_size=8, block_size=T, seed=3).batch(2)
    parts = [
        BatchSampler(counting, batch_size=8, block_size=T, seed=3, process_index=p, process_count=4).batch(2)
        for p in range(4)
    ]
    assert all(part["x"].shape == (2, T) for part in parts)
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), whole["x"])
    starts = [int(s) for p in parts for s in p["x"][:, 0]]
    assert len(set(starts)) == 8
    with pytest.raises(TheseusError, match="multiple of the 3 processes"):
        BatchSampler(counting, batch_size=8, block_size=T, process_count=3)


def test_every_window_once_per_epoch(counting):
    sampler = BatchSampler(counting, batch_size=3, block_size=T, seed=0)
    windows = sampler._train[0].count
    assert windows == 39  # one window is given up so that window starts can shift between epochs
    epoch = [int(s) for step in range(windows // 3) for s in sampler.batch(step)["x"][:, 0]]
    assert len(set(epoch)) == windows
    assert len({s % T for s in epoch}) == 1  # one shift for the whole epoch
    following = [int(s) for step in range(13, 26) for s in sampler.batch(step)["x"][:, 0]]
    assert len(set(following)) == windows and following != epoch


def test_mask_after_eot(tmp_path):
    tokens = np.tile([5, 6, 7, 0], 50)  # 0 is the end-of-text id
    ds = make_variable(tmp_path / "eot", tokens, tokens)
    plain = BatchSampler(ds, batch_size=4, block_size=T).batch(0)
    assert plain["mask"].all()
    masked = BatchSampler(ds, batch_size=4, block_size=T, mask_after_eot=True).batch(0)
    np.testing.assert_array_equal(masked["mask"] == 0, masked["x"] == 0)
    assert 0 < (masked["mask"] == 0).sum() < masked["mask"].size


def test_mixture_takes_fixed_rows_per_dataset(tmp_path):
    a = make_variable(tmp_path / "a", np.arange(0, 4000), np.arange(0, 100))
    b = make_variable(tmp_path / "b", np.arange(50_000, 54_000), np.arange(50_000, 50_100))
    sampler = BatchSampler([(a, 3.0), (b, 1.0)], batch_size=8, block_size=T, seed=0)
    assert sampler.rows_per_step == [6, 2]
    for step in range(5):
        x = sampler.batch(step)["x"]
        assert (x[:, 0] >= 50_000).sum() == 2
    shares = [
        BatchSampler([(a, 3.0), (b, 1.0)], batch_size=8, block_size=T, process_index=p, process_count=2)
        for p in range(2)
    ]
    assert sum(int((s.batch(0)["x"][:, 0] >= 50_000).sum()) for s in shares) == 2
    assert allocate([1, 1, 1], 10) == [4, 3, 3] and allocate([0.5, 0.25, 0.25], 4) == [2, 1, 1]
    with pytest.raises(TheseusError, match="gets 0 of 8 rows"):
        BatchSampler([(a, 0.99), (b, 0.01)], batch_size=8, block_size=T)
    with pytest.raises(TheseusError, match="positive"):
        BatchSampler([(a, 1.0), (b, 0.0)], batch_size=8, block_size=T)


def test_blockwise_rows_use_the_stored_mask(tmp_path):
    rows = np.arange(6 * (T + 1)).reshape(6, T + 1) + 1
    masks = np.zeros_like(rows)
    masks[:, 3:] = 1
    ds = make_blockwise(tmp_path / "rows", rows, masks, block_size=T)
    batch = BatchSampler(ds, batch_size=6, block_size=T).batch(0)
    assert sorted(batch["x"][:, 0].tolist()) == sorted(rows[:, 0].tolist())  # one epoch: every row once
    for x, y, mask in zip(batch["x"], batch["y"], batch["mask"]):
        row = rows[(x[0] - 1) // (T + 1)]
        np.testing.assert_array_equal(x, row[:-1])
        np.testing.assert_array_equal(y, row[1:])
        assert mask.tolist() == [0.0, 0.0] + [1.0] * (T - 2)
    with pytest.raises(TheseusError, match="architecture.block_size=16"):
        BatchSampler(ds, batch_size=2, block_size=16)


def test_validation_batches_are_fixed_windows_of_val(counting):
    sampler = BatchSampler(counting, batch_size=4, block_size=T, seed=9)
    val = sampler.validation_batches(2)
    again = BatchSampler(counting, batch_size=4, block_size=T, seed=9).validation_batches(2)
    for one, other in zip(val, again):
        assert all((one[k] == other[k]).all() for k in one)
    starts = sorted(int(s) - 10**6 for b in val for s in b["x"][:, 0])
    assert starts == [0, 0, T, T, 2 * T, 3 * T, 4 * T, 5 * T]  # 6 windows, wrapped around for 8 rows
    tiny = make_variable(counting.path.parent / "tiny", np.arange(100), np.arange(5))
    with pytest.raises(TheseusError, match="raise data.val_fraction"):
        BatchSampler(tiny, batch_size=2, block_size=T).validation_batches(1)
    with pytest.raises(TheseusError, match="too little train data"):
        BatchSampler(tiny, batch_size=2, block_size=128)


def test_vocab_and_tokenizer_checks():
    meta = {
        "dataset": "d",
        "vocab_size": 259,
        "tokenizer": {"backend": "byte", "name": "byte", "vocab_sha256": "a"},
    }
    check_vocab(meta, 259)
    check_vocab(meta, 512)
    with pytest.raises(TheseusError, match="architecture.vocab_size to at least 259"):
        check_vocab(meta, 256)
    check_tokenizer(meta, {"vocab_sha256": "a"})
    with pytest.raises(TheseusError, match="was tokenized with byte byte"):
        check_tokenizer(meta, {"backend": "tiktoken", "name": "r50k_base", "vocab_sha256": "b"})


def test_unfinished_or_broken_directories_are_refused(tmp_path):
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "progress.json").write_text("{}")
    with pytest.raises(TheseusError, match="only partly tokenized"):
        TokenDataset.open(tmp_path / "partial")
    with pytest.raises(TheseusError, match="not a tokenized dataset"):
        TokenDataset.open(tmp_path / "nothing")
    ds = make_variable(tmp_path / "odd", np.arange(100), np.arange(100))
    (ds.path / "train.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(TheseusError, match="not a whole number"):
        TokenDataset.open(ds.path)


def test_prefetcher_matches_the_sampler_and_stops(counting):
    sampler = BatchSampler(counting, batch_size=4, block_size=T, seed=4)
    with Prefetcher(sampler, start_step=7, depth=2) as batches:
        for step, batch in zip(range(7, 12), batches):
            assert (batch["x"] == sampler.batch(step)["x"]).all()
        assert batches.next_step == 12
        assert batches._queue.qsize() <= 2
    assert not batches._thread.is_alive()

    class Failing:
        def batch(self, step):
            if step == 2:
                raise TheseusError("broken at 2")
            return {"step": np.array(step)}

    failing = Prefetcher(Failing(), start_step=0)  # type: ignore[arg-type]
    assert [int(next(failing)["step"]) for _ in range(2)] == [0, 1]
    with pytest.raises(TheseusError, match="broken at 2"):
        next(failing)
    with pytest.raises(StopIteration):
        next(failing)
    failing.close()
    assert not failing._thread.is_alive()


def test_prefetcher_places_each_batch_on_its_own_thread(counting):
    sampler = BatchSampler(counting, batch_size=4, block_size=T, seed=4)
    threads = []

    def place(batch):
        threads.append(threading.current_thread().name)
        return {"doubled": batch["x"] * 2}

    with Prefetcher(sampler, start_step=3, depth=2, place=place) as batches:
        for step, placed in zip(range(3, 6), batches):
            assert (placed["doubled"] == sampler.batch(step)["x"] * 2).all()
    assert set(threads) == {"theseus-prefetch"}


def test_reads_what_the_tokenize_job_wrote(tmp_path):
    glob, _ = write_corpus(tmp_path / "corpus", n=40)
    run_tokenize(
        TokenizeVariableDatasetJob,
        tmp_path,
        "data.dataset=text_files",
        f"data.text_files.paths=[{glob}]",
        "data.val_fraction=0.3",
        "data.workers=1",
    )
    ds = TokenDataset.open(tmp_path / "data" / "text_files")
    check_vocab(ds.meta, 259)
    assert ds.format == "variable" and ds.tokens["train"].dtype == np.uint16 and ds.eot_id == 256
    batch = BatchSampler(ds, batch_size=4, block_size=32).batch(0)
    assert batch["x"].max() <= 256 and bytes(batch["x"][0][batch["x"][0] < 256].astype(np.uint8).tolist())
    assert len(BatchSampler(ds, batch_size=4, block_size=32).validation_batches(2)) == 2


def test_small_permutations_take_a_faster_path_with_the_same_result(monkeypatch):
    from theseus.data import permutation

    rng = np.random.default_rng(0)
    cases = []
    for trial in range(300):
        n = int(rng.integers(2, 10 ** int(rng.integers(1, 7))))
        idx = rng.choice(n, size=int(rng.integers(1, min(n, 63) + 1)), replace=False)
        cases.append((idx, n, (trial, "rows")))
    fast = [permutation.permute(*case) for case in cases]
    monkeypatch.setattr(permutation, "SMALL", 0)  # every size through NumPy
    for case, got in zip(cases, fast):
        np.testing.assert_array_equal(got, permutation.permute(*case))
