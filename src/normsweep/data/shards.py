"""Reading a prepared split (:mod:`normsweep.data.prepare` writes it): its shards batch by batch
(:class:`ShardedSplit`), reads run a few batches ahead on threads (:func:`prefetched`), and the
seeded class-stratified sample a subset setting takes (:func:`stratified_sample`)."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from normsweep.core.errors import DataError
from normsweep.data.prepare import from_runs

if TYPE_CHECKING:
    import torch


class ShardedSplit:
    """A prepared split read batch by batch from its shards (``manifests`` in order, their pixel
    files in ``folder``). Its labels and classes are in memory (8 bytes per image); pixels are
    read on demand with ``os.pread``: one call per run of consecutive images."""

    def __init__(
        self,
        folder: str | Path,
        manifests: Sequence[dict[str, Any]],
        classes: Sequence[str],
        labels: Sequence[int] | None = None,
    ):
        self.folder = Path(folder)
        self.classes = list(classes)
        self.shapes = [tuple(m["shape"]) for m in manifests]
        self.image_shape = self.shapes[0][1:] if self.shapes else (3, 0, 0)
        self.image_bytes = int(np.prod(self.image_shape))
        self.offsets = [int(m["header_bytes"]) for m in manifests]
        self.paths = [self.folder / m["pixels"] for m in manifests]
        sizes = [s[0] for s in self.shapes]
        self.starts = np.cumsum([0, *sizes])
        import torch

        if labels is None:  # a record from before it held the labels: the shards' own
            labels = [label for m in manifests for label in m["labels"]]
        if len(labels) != int(self.starts[-1]):
            raise DataError(
                f"{self.folder}: the record has {len(labels)} labels for {int(self.starts[-1])} prepared "
                "images; rerun snakemake (the data check records them again)"
            )
        self.labels = torch.tensor(list(labels), dtype=torch.int64)
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: str | Path, split: str) -> ShardedSplit:
        """The split as the data check recorded it in ``folder/files.json``."""
        folder = Path(folder)
        record_path = folder / "files.json"
        if not record_path.exists():
            raise DataError(f"{record_path}: no data record; the check_data rule makes it (rerun snakemake)")
        record = json.loads(record_path.read_text())
        manifests = []
        for name in record[split]["shards"]:
            manifest = json.loads((folder / name).read_text())
            manifest["pixels"] = str(Path(name).parent / manifest["pixels"])  # beside its manifest
            manifests.append(manifest)
        part = record[split]
        labels = from_runs(part["labels"]) if "labels" in part else None
        return cls(folder, manifests, part["classes"], labels)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _fd(self, shard: int) -> int:
        with self._lock:  # reading threads share one descriptor per shard
            if shard not in self._fds:
                try:
                    self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
                except FileNotFoundError:
                    raise DataError(
                        f"{self.paths[shard]}: a prepared shard is missing; rerun snakemake"
                    ) from None
            return self._fds[shard]

    def read(self, index: np.ndarray | torch.Tensor, out: np.ndarray | None = None) -> np.ndarray:
        """The images ``index`` (global positions, any order) as an n x 3 x H x W uint8 array
        (``out``: read into this array, e.g. a pinned buffer's)."""
        index = np.asarray(index, dtype=np.int64)
        if out is None:
            out = np.empty((len(index), *self.image_shape), dtype=np.uint8)
        flat = out.reshape(len(index), -1)
        shard_of = np.searchsorted(self.starts, index, side="right") - 1
        i = 0
        while i < len(index):  # a run: consecutive images of one shard, read at once
            j = i + 1
            while j < len(index) and shard_of[j] == shard_of[i] and index[j] == index[j - 1] + 1:
                j += 1
            shard = int(shard_of[i])
            local = int(index[i] - self.starts[shard])
            wanted = (j - i) * self.image_bytes
            got = os.preadv(self._fd(shard), [memoryview(flat[i:j]).cast("B")],
                            self.offsets[shard] + local * self.image_bytes)  # fmt: skip
            if got != wanted:
                raise DataError(
                    f"{self.paths[shard]}: truncated ({got} of {wanted} bytes); delete it and rerun"
                )
            i = j
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def prefetched(reads: Iterator[np.ndarray | Any], depth: int) -> Iterator[Any]:
    """Run the callables of ``reads`` ``depth`` ahead on threads (``os.pread`` and the copies
    release the GIL, so reading overlaps the training step); yield their results in order."""
    depth = max(1, depth)
    with ThreadPoolExecutor(max_workers=depth) as pool:
        pending = []
        for read in reads:
            pending.append(pool.submit(read))
            if len(pending) > depth:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def stratified_sample(labels: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor | None:
    """The indices (in their original order) of a seeded, class-stratified sample of ``n`` of
    ``labels``: each class gets its share of ``n`` (largest remainders, at least one image per
    class while ``n`` allows), drawn at random within the class; exactly ``n`` in all. The same
    labels, ``n`` and seed give the same sample for every cell of a study. None: all of them.

    An ImageFolder lists its files class by class, so its first ``n`` files are one class (a
    ``test_subset: 100`` of a 10-class folder measured accuracy 0.0000, every image class 0)."""
    import torch

    total = int(labels.numel())
    if n is None or n >= total:
        return None
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    floor = 1 if n >= len(classes) else 0  # every class present while n allows
    share = torch.minimum(exact.floor().long().clamp(min=floor), counts)
    while (left := n - int(share.sum())) != 0:  # n < total: room is always left somewhere
        if left > 0:  # the largest remaining shortfalls get one more (a class raised to 1 has none)
            room = share < counts
            order = torch.argsort(torch.where(room, exact - share, -math.inf), descending=True, stable=True)
            for i in order[: min(left, int(room.sum()))]:
                share[i] += 1
        else:  # the minimum took more than n: one fewer from the most over-served classes
            spare = share > floor
            order = torch.argsort(torch.where(spare, share - exact, -math.inf), descending=True, stable=True)
            for i in order[: min(-left, int(spare.sum()))]:
                share[i] -= 1
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls, k in zip(classes.tolist(), share.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.sort(torch.cat(picked)).values
