"""Reading tokenized data: memmapped datasets and deterministic batches.

::

    ds = TokenDataset.open(out / "data" / "shakespeare")   # meta.json + memmapped train/val
    check_vocab(ds.meta, model_vocab_size)                   # TheseusError if the ids do not fit
    sampler = BatchSampler([(ds, 1.0)], batch_size=64, block_size=256, seed=0,
                           process_index=jax.process_index(), process_count=jax.process_count())
    batch = sampler.batch(step)      # {"x": int32[B_local, T], "y": int32[B_local, T], "mask": float32[B_local, T]}
    val = sampler.validation_batches(8)                      # the same list every time
    with Prefetcher(sampler, start_step=step, depth=2) as batches:
        for batch in batches: ...                            # batches step, step + 1, ...

**Batches are a pure function of (seed, step, process index, process count).** Nothing
reads a global RNG, so a run resumed at step ``s`` sees exactly the batches it would
have seen. The global batch is the same whatever the process count; process ``p`` gets
rows ``p·B/P .. (p+1)·B/P - 1`` of it, so processes never draw the same row.

**Sampling is by epochs, without replacement.** Each dataset is a stream of samples:
windows of ``block_size + 1`` tokens (variable format; window starts are multiples of
``block_size`` plus a shift that changes every epoch) or rows (blockwise format). Epoch
``e`` visits every sample once in the order of a keyed permutation
(:mod:`theseus.data.permutation`).

**Mixtures.** With several ``(dataset, rate)`` pairs, every step takes a fixed number of
rows from each dataset (the rates times the batch size, rounded by largest remainder;
:attr:`BatchSampler.rows_per_step`), then shuffles the rows of the global batch.

**Masks.** ``mask`` is 1 where the loss counts. Variable format: all ones (optionally 0
where the input token is the end-of-text id, ``mask_after_eot``). Blockwise: the stored
loss mask of the target tokens (0 on padding; assistant tokens only when tokenized so).

**Validation** uses the validation split: consecutive windows (or rows) from its start,
the same on every call; when the split is shorter than asked it wraps around.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from theseus.data.output import META, PROGRESS, differences, read_meta
from theseus.data.permutation import hash_ints, permute
from theseus.errors import TheseusError

Batch = dict[str, np.ndarray]
SPLITS = ("train", "val")


def _memmap(path: Path, dtype: str, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    if not path.is_file():
        raise TheseusError(f"{path} is missing; tokenize the dataset again")
    item = np.dtype(dtype).itemsize * int(np.prod(shape_tail or (1,)))
    size = path.stat().st_size
    if size % item:
        raise TheseusError(f"{path} has {size} bytes, not a whole number of {dtype} rows; tokenize it again")
    if size == 0:
        return np.zeros((0, *shape_tail), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(size // item, *shape_tail))


@dataclass(frozen=True)
class TokenDataset:
    """A finished tokenized dataset directory: its ``meta.json`` and memmapped splits."""

    path: Path
    meta: dict[str, Any]
    tokens: Mapping[str, np.ndarray]  # split -> ids: flat (variable) or [rows, row_length] (blockwise)
    masks: Mapping[str, np.ndarray]  # split -> uint8 [rows, row_length] (blockwise only)

    @classmethod
    def open(cls, path: str | Path) -> TokenDataset:
        """Open a directory written by a tokenization job (refuses unfinished ones)."""
        path = Path(path)
        meta = read_meta(path)
        if meta is None:
            if (path / PROGRESS).exists():
                raise TheseusError(
                    f"{path} is only partly tokenized; run the tokenization job again to finish it"
                )
            raise TheseusError(
                f"{path} is not a tokenized dataset (no {META}); run data/tokenize_variable_dataset"
            )
        fmt = meta.get("format")
        dtype = str(meta.get("dtype"))
        if fmt == "variable":
            tokens = {s: _memmap(path / f"{s}.bin", dtype) for s in SPLITS}
            return cls(path, meta, tokens, {})
        if fmt == "blockwise":
            row = (int(meta["row_length"]),)
            tokens = {s: _memmap(path / f"{s}.bin", dtype, row) for s in SPLITS}
            masks = {s: _memmap(path / f"{s}.mask.bin", "uint8", row) for s in SPLITS}
            return cls(path, meta, tokens, masks)
        raise TheseusError(f"{path}/{META} names an unknown format {fmt!r}")

    @property
    def name(self) -> str:
        """The directory name (``<dataset>[_<suffix>]``)."""
        return self.path.name

    @property
    def format(self) -> str:
        """``variable`` or ``blockwise``."""
        return str(self.meta["format"])

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size."""
        return int(self.meta["vocab_size"])

    @property
    def eot_id(self) -> int:
        """The end-of-text id."""
        return int(self.meta["eot_id"])


def check_vocab(meta: Mapping[str, Any], model_vocab_size: int) -> None:
    """Raise :class:`TheseusError` unless every id of the data is below ``model_vocab_size``."""
    vocab = int(meta["vocab_size"])
    if vocab > model_vocab_size:
        tok = meta.get("tokenizer", {})
        raise TheseusError(
            f"data {meta.get('dataset')} was tokenized with {tok.get('backend')} {tok.get('name')} "
            f"({vocab} ids) but the model's vocab_size is {model_vocab_size}; "
            f"set architecture.vocab_size to at least {vocab}"
        )


def data_identity(ds: TokenDataset) -> dict[str, Any]:
    """What a run records about its data to notice, on resume, that it changed."""
    meta = ds.meta
    return {
        "content_sha256": meta.get("content_sha256"),
        "fingerprint": meta.get("fingerprint"),
        "settings": meta.get("settings"),
        "train": meta.get("train"),
        "val": meta.get("val"),
    }


def data_change(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str | None:
    """What differs between a recorded and the current :func:`data_identity`, or ``None``."""
    if not isinstance(recorded, Mapping):
        return None  # recorded by a theseus that did not record data: nothing to compare
    old_content, new_content = recorded.get("content_sha256"), current.get("content_sha256")
    if old_content and old_content == new_content:
        return None
    changed = []
    for section in ("settings", *SPLITS):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for key in differences(old, new):
            label = key if section == "settings" else f"{section} {key}"
            changed.append(f"{label} {_show(_dig(old, key))} -> {_show(_dig(new, key))}")
    if changed:
        return ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
    if old_content and new_content:
        return "same settings and sizes, other content"
    return None


def _dig(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def _show(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)


def check_tokenizer(
    meta: Mapping[str, Any],
    identity: Mapping[str, Any],
    against: str | None = None,
    fix: str = "tokenize it again with this tokenizer (and another data.suffix) or change tokenizer.*",
) -> None:
    """Raise :class:`TheseusError` unless the data was tokenized with the tokenizer ``identity`` describes.

    ``against`` names that tokenizer in the message (default: "the configured <backend> <name>");
    ``fix`` says what to do.
    """
    have = meta.get("tokenizer", {})
    if have.get("vocab_sha256") != identity.get("vocab_sha256"):
        against = against or f"the configured {identity.get('backend')} {identity.get('name')}"
        raise TheseusError(
            f"data {meta.get('dataset')} was tokenized with {have.get('backend')} {have.get('name')}, "
            f"not {against}; {fix}"
        )


def allocate(rates: Sequence[float], total: int) -> list[int]:
    """Split ``total`` rows in proportion to ``rates`` (largest remainder, ties to the first)."""
    weights = np.asarray(rates, dtype=np.float64)
    if weights.size == 0 or (weights <= 0).any() or not np.isfinite(weights).all():
        raise TheseusError(f"mixture rates must be positive numbers, got {list(rates)}")
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(int)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


class _Source:
    """One dataset's split as a stream of samples of ``block_size + 1`` tokens."""

    def __init__(
        self, ds: TokenDataset, split: str, block_size: int, index: int, seed: int, shifting: bool = True
    ) -> None:
        self.ds = ds
        self.index = index
        self.seed = seed
        self.block_size = block_size
        self.tokens = ds.tokens[split]
        self.mask = ds.masks.get(split)
        if ds.format == "blockwise":
            if int(ds.meta["block_size"]) != block_size:
                raise TheseusError(
                    f"data {ds.name} has rows for block_size {ds.meta['block_size']}, not {block_size}; "
                    f"tokenize it again with architecture.block_size={block_size}"
                )
            self.count = len(self.tokens)
            self.spare = 0
        else:
            usable = len(self.tokens) - 1
            self.count = max(0, usable // block_size)
            self.spare = usable - self.count * block_size
            if shifting and self.count >= 2:  # give up one window so every epoch can shift its window starts
                self.count -= 1
                self.spare += block_size
        if self.count == 0:
            have = f"{len(self.tokens)} {'rows' if ds.format == 'blockwise' else 'tokens'}"
            raise TheseusError(
                f"data {ds.name} has too little {split} data for block_size {block_size} ({have})"
                + ("; raise data.val_fraction" if split == "val" else "")
            )

    def _shift(self, epoch: int) -> int:
        if self.spare == 0:
            return 0
        return hash_ints((self.seed, self.index, epoch, "shift"))[0] % (
            min(self.spare, self.block_size - 1) + 1
        )

    def shuffled(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples at stream ``positions`` (epochs of keyed permutations): (sample index, shift)."""
        epochs, items = np.divmod(positions, self.count)
        shifts = np.zeros_like(items)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            items[sel] = permute(items[sel], self.count, (self.seed, self.index, int(epoch), "order"))
            shifts[sel] = self._shift(int(epoch))
        return items, shifts

    def in_order(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``positions mod count`` from the start (validation)."""
        return positions % self.count, np.zeros_like(positions)

    def rows(
        self, items: np.ndarray, shifts: np.ndarray, mask_after_eot: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens[n, T + 1], mask[n, T])`` of the given samples."""
        span = self.block_size + 1
        if self.ds.format == "blockwise":
            assert self.mask is not None
            return np.asarray(self.tokens[items], dtype=np.int32), np.asarray(
                self.mask[items][:, 1:], np.float32
            )
        starts = shifts + items * self.block_size
        windows = np.asarray(self.tokens[starts[:, None] + np.arange(span)], dtype=np.int32)
        mask = np.ones((len(items), self.block_size), np.float32)
        if mask_after_eot:
            mask[windows[:, :-1] == self.ds.eot_id] = 0.0
        return windows, mask


class BatchSampler:
    """Deterministic batches from one dataset or a mixture (see the module docstring)."""

    def __init__(
        self,
        sources: Sequence[tuple[TokenDataset, float]] | TokenDataset,
        batch_size: int,
        block_size: int,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        split: str = "train",
        mask_after_eot: bool = False,
    ) -> None:
        pairs = [(sources, 1.0)] if isinstance(sources, TokenDataset) else list(sources)
        if not pairs:
            raise TheseusError("a batch sampler needs at least one dataset")
        if split not in SPLITS:
            raise TheseusError(f"split must be one of {SPLITS}, not {split!r}")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise TheseusError(f"process index {process_index} is outside 0..{process_count - 1}")
        if batch_size < 1 or batch_size % process_count:
            raise TheseusError(
                f"batch size {batch_size} must be a positive multiple of the {process_count} processes"
            )
        if block_size < 1:
            raise TheseusError(f"block_size must be positive, got {block_size}")
        self.batch_size = batch_size
        self.block_size = block_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.split = split
        self.mask_after_eot = mask_after_eot
        self.datasets = [ds for ds, _ in pairs]
        self.rows_per_step = allocate([rate for _, rate in pairs], batch_size)
        for (ds, rate), rows in zip(pairs, self.rows_per_step):
            if rows == 0:
                raise TheseusError(
                    f"dataset {ds.name} (rate {rate}) gets 0 of {batch_size} rows per step; "
                    "raise its rate or the batch size"
                )
        self._train = [_Source(ds, split, block_size, i, seed) for i, ds in enumerate(self.datasets)]
        self._val: list[_Source] | None = None
        local = batch_size // process_count
        self._local = slice(process_index * local, (process_index + 1) * local)

    def _assemble(self, sources: list[_Source], step: int, validation: bool) -> Batch:
        order = permute(np.arange(self.batch_size), self.batch_size, (self.seed, step, "rows", validation))
        wanted = order[self._local]
        offsets = np.cumsum([0, *self.rows_per_step])
        x = np.empty((len(wanted), self.block_size), np.int32)
        y = np.empty_like(x)
        mask = np.empty((len(wanted), self.block_size), np.float32)
        for d, source in enumerate(sources):
            sel = (wanted >= offsets[d]) & (wanted < offsets[d + 1])
            if not sel.any():
                continue
            positions = step * self.rows_per_step[d] + (wanted[sel] - offsets[d])
            items, shifts = source.in_order(positions) if validation else source.shuffled(positions)
            windows, m = source.rows(items, shifts, self.mask_after_eot)
            x[sel], y[sel], mask[sel] = windows[:, :-1], windows[:, 1:], m
        return {"x": x, "y": y, "mask": mask}

    def batch(self, step: int) -> Batch:
        """This process's rows of global batch ``step`` (a pure function of seed, step and process)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        return self._assemble(self._train, step, validation=False)

    def validation_batches(self, n_batches: int) -> list[Batch]:
        """``n_batches`` fixed batches from the start of the validation split."""
        if self._val is None:
            self._val = [
                _Source(ds, "val", self.block_size, i, self.seed, shifting=False)
                for i, ds in enumerate(self.datasets)
            ]
        return [self._assemble(self._val, j, validation=True) for j in range(n_batches)]


class Prefetcher:
    """Batches ``start_step``, ``start_step + 1``, ... computed ahead on a thread (at most ``depth``).

    ``place`` (optional) runs on the same thread on each batch before it is queued: the
    trainer passes one that splits it into micro-batches and puts it on the devices, so
    the training loop receives arrays already being transferred and never waits on it.
    """

    def __init__(
        self,
        sampler: BatchSampler,
        start_step: int = 0,
        depth: int = 2,
        place: Callable[[Batch], Any] | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.sampler = sampler
        self.next_step = start_step
        self._place = place
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, args=(start_step,), name="theseus-prefetch", daemon=True
        )
        self._thread.start()

    def _fill(self, step: int) -> None:
        while not self._stop.is_set():
            item: Any
            try:
                item = self.sampler.batch(step)
                if self._place is not None:
                    item = self._place(item)
            except BaseException as exc:
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put((step, item), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            step += 1

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._stop.is_set():
            raise StopIteration
        step, item = self._queue.get()
        if isinstance(item, BaseException):
            self._stop.set()  # the thread has ended; later calls stop at once
            raise item
        assert step == self.next_step
        self.next_step += 1
        return item

    def close(self) -> None:
        """Stop the thread and drop what it prepared."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
