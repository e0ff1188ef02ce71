"""The one data interface of training and evaluation: a split yields batches of float images
in [0, 1] and their labels on the device, in a given order, from a given batch on.

- :class:`TensorData`: a split held whole on the device (MNIST: 47 MB of pixels, 188 MB as
  float32; indexing it is the fastest way to batch it).
- :class:`Streamed`: a prepared ImageFolder split (:class:`normsweep.images.ShardedSplit`)
  read batch by batch on threads a few batches ahead, so host and device memory are bounded
  by the batch size and the prefetch depth, whatever the data set's size.

The one-cell run, the packs and the evaluation read through :meth:`Split.batches` and never
know which of the two they have.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .images import SPLITS, ShardedSplit, prefetched, stratified_sample

#: The seed of an ImageFolder's train_subset / test_subset sample: one sample for every cell.
SUBSET_SEED = 0


class Split(Protocol):
    labels: torch.Tensor

    def __len__(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def to(self, device: torch.device) -> Split: ...

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass
class TensorData:
    """A split as tensors: images as float in [0, 1] (N x C x H x W) and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_uint8(cls, images: torch.Tensor, labels: torch.Tensor) -> TensorData:
        if images.dim() == 3:  # N x H x W (MNIST): add the channel axis
            images = images.unsqueeze(1)
        return cls(images.to(torch.float32).div_(255.0), labels)

    def to(self, device: torch.device) -> TensorData:
        return TensorData(self.images.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start``, ``start + 1``, ... of ``order`` (None: the stored order)."""
        if order is None:
            for lo in range(start * batch_size, len(self), batch_size):
                yield self.images[lo : lo + batch_size], self.labels[lo : lo + batch_size]
            return
        order = order.to(self.images.device)
        for lo in range(start * batch_size, len(self), batch_size):
            index = order[lo : lo + batch_size]
            yield self.images[index], self.labels[index]


class Streamed:
    """A prepared split (or the sample ``index`` of it) read from its shards batch by batch,
    ``prefetch`` batches ahead on as many threads, then moved to ``device`` as float in [0, 1]."""

    def __init__(
        self,
        split: ShardedSplit,
        index: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        prefetch: int = 2,
    ):
        self.split = split
        self.index = index
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.labels = split.labels if index is None else split.labels[index]
        self.classes = split.classes

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.split.image_shape[0])

    def to(self, device: torch.device) -> Streamed:
        moved = copy.copy(self)
        moved.device = torch.device(device)
        return moved

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        positions = torch.arange(len(self)) if order is None else order.cpu()
        wanted = positions if self.index is None else self.index[positions]
        cuts = range(start * batch_size, len(self), batch_size)

        def reads():
            for lo in cuts:
                ix = wanted[lo : lo + batch_size].numpy()
                yield lambda ix=ix: self.split.read(ix)

        pin = self.device.type == "cuda"
        for lo, pixels in zip(cuts, prefetched(reads(), self.prefetch), strict=True):
            x = torch.from_numpy(pixels)
            if pin:
                x = x.pin_memory()
            x = x.to(self.device, non_blocking=pin).float().div_(255.0)
            yield x, self.labels[positions[lo : lo + batch_size]].to(self.device)


def open_splits(
    root: str | Path,
    folder: str | Path | None,
    subsets: tuple[int | None, int | None] = (None, None),
    prefetch: int = 2,
) -> tuple[Split, Split, int]:
    """The training and test splits and the number of classes, as the data check recorded them
    in ``folder/files.json``: a prepared ImageFolder is streamed from its shards (``subsets``: a
    seeded class-stratified sample of each split, the same for every cell, and only its
    images are read); MNIST is read from ``root`` into memory (``subsets``: its first images,
    which are in random order)."""
    record_path = Path(folder) / "files.json" if folder is not None else None
    record = json.loads(record_path.read_text()) if record_path and record_path.exists() else {}
    if "shards" in record.get("val", {}):
        out: dict[str, Split] = {}
        for split, n in zip(SPLITS, subsets, strict=True):
            if "shards" in record.get(split, {}):  # an evaluation-only study prepares val/ only
                shards = ShardedSplit.open(folder, split)  # type: ignore[arg-type]
                out[split] = Streamed(
                    shards, stratified_sample(shards.labels, n, SUBSET_SEED), prefetch=prefetch
                )
        test = out["val"]
        empty = TensorData(torch.zeros(0, test.channels, 1, 1), torch.zeros(0, dtype=torch.int64))
        return out.get("train", empty), test, len(record["val"]["classes"])
    from .data import load_mnist

    train = load_mnist(root, train=True, limit=subsets[0])
    test = load_mnist(root, train=False, limit=subsets[1])
    return (
        TensorData.from_uint8(train.images, train.labels),
        TensorData.from_uint8(test.images, test.labels),
        10,
    )
