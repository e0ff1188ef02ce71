"""The one data interface of training and evaluation: a split yields batches of float images
in [0, 1] and their labels on the device, in a given order, from a given batch on.

Pixels travel as uint8 and become float on the device (:func:`as_float`). :class:`TensorData`
holds a split whole on the device (MNIST); :class:`Streamed` reads prepared shards a few batches
ahead on threads (pinned memory and a side-stream copy on CUDA: :func:`ahead`), so memory is
bounded by the batch size whatever the data set's size. Callers never know which they have.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from normsweep.core.errors import DataError
from normsweep.data.prepare import SPLITS
from normsweep.data.shards import ShardedSplit, prefetched, stratified_sample

#: The seed of an ImageFolder's train_subset / test_subset sample: one sample for every cell.
SUBSET_SEED = 0


class Split(Protocol):
    labels: torch.Tensor

    def __len__(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def to(self, device: torch.device, channels_last: bool = False) -> Split: ...

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def as_float(pixels: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """A batch as float in [0, 1] where it is (uint8 pixels divided by 255; float passes as
    is), in NHWC memory with ``channels_last``."""
    x = pixels.float().div_(255.0) if pixels.dtype == torch.uint8 else pixels
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def ahead(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device, channels_last: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Host batches (pixels, labels) on ``device`` as float batches. On CUDA every copy runs on
    a side stream and is started one batch ahead (non-blocking, from pinned memory), so it
    overlaps the compute of the batch before; the compute waits for its batch only. Elsewhere
    the same loop copies in order."""
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def send(batch: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if batch is None:
            return None
        if stream is None:
            return batch[0].to(device), batch[1].to(device)
        with torch.cuda.stream(stream):
            return batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)

    source = iter(batches)
    coming = send(next(source, None))
    while coming is not None:
        x, y = coming
        if stream is not None:
            current = torch.cuda.current_stream(device)
            current.wait_stream(stream)  # this batch's copy is done before its compute starts
            x.record_stream(current)  # its memory is not reused while the compute reads it
            y.record_stream(current)
        coming = send(next(source, None))
        yield as_float(x, channels_last), y


@dataclass
class TensorData:
    """A split as tensors: images (N x C x H x W), uint8 or float in [0, 1], and int64
    labels. Batches come out as float in [0, 1] (:func:`as_float`)."""

    images: torch.Tensor
    labels: torch.Tensor
    channels_last: bool = False

    @classmethod
    def from_uint8(cls, images: torch.Tensor, labels: torch.Tensor) -> TensorData:
        """The pixels kept as uint8 (a batch becomes float on its device, when it is taken)."""
        if images.dim() == 3:  # N x H x W (MNIST): add the channel axis
            images = images.unsqueeze(1)
        return cls(images, labels)

    def to(self, device: torch.device, channels_last: bool = False) -> TensorData:
        return TensorData(self.images.to(device), self.labels.to(device), channels_last)

    def floats(self) -> torch.Tensor:
        """All images as float in [0, 1]."""
        return as_float(self.images)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start``, ``start + 1``, ... of ``order`` (None: the stored order; an order
        may leave images out)."""
        if order is None:
            for lo in range(start * batch_size, len(self), batch_size):
                yield (
                    as_float(self.images[lo : lo + batch_size], self.channels_last),
                    self.labels[lo : lo + batch_size],
                )
            return
        order = order.to(self.images.device)
        for lo in range(start * batch_size, len(order), batch_size):  # an order may leave images out
            index = order[lo : lo + batch_size]
            yield as_float(self.images[index], self.channels_last), self.labels[index]


class Streamed:
    """A prepared split (or the sample ``index`` of it) read from its shards batch by batch,
    ``prefetch`` batches ahead on as many threads (into pinned memory for CUDA), then moved to
    ``device`` one batch ahead (:func:`ahead`) and made float in [0, 1] there."""

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
        self.channels_last = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.split.image_shape[0])

    def to(self, device: torch.device, channels_last: bool = False) -> Streamed:
        moved = copy.copy(self)
        moved.device = torch.device(device)
        moved.channels_last = channels_last
        return moved

    def batches(
        self, order: torch.Tensor | None, batch_size: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        positions = torch.arange(len(self)) if order is None else order.cpu()
        wanted = positions if self.index is None else self.index[positions]
        cuts = range(start * batch_size, len(positions), batch_size)

        pin = self.device.type == "cuda"  # page-locked: the copy to the GPU runs beside the compute

        def read(lo: int) -> tuple[torch.Tensor, torch.Tensor]:
            ix = wanted[lo : lo + batch_size].numpy()
            pixels = torch.empty((len(ix), *self.split.image_shape), dtype=torch.uint8, pin_memory=pin)
            self.split.read(ix, out=pixels.numpy())  # straight into the (pinned) buffer: no second copy
            return pixels, self.labels[positions[lo : lo + batch_size]]

        reads = (lambda lo=lo: read(lo) for lo in cuts)
        yield from ahead(prefetched(reads, self.prefetch), self.device, self.channels_last)


def left_out(model: torch.nn.Module, n_train: int, batch_size: int) -> int:
    """Training images left out of each epoch: the one image of a last batch of one when the
    network has batch normalization (it cannot normalize over one image in training mode),
    else none. Every other last batch is kept, smaller, as the notebook's DataLoader keeps it
    (timm's drops every incomplete one): a LeNet study's numbers do not change."""
    norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not norm or n_train % batch_size != 1:
        return 0
    if n_train == 1:
        raise DataError(
            "a training set of one image cannot train a network with batch normalization; "
            "raise training.train_subset (or use a larger data set)"
        )
    return 1


def relabeled(split: Split, mapping: Sequence[int]) -> Split:
    """``split`` with each label ``i`` read as ``mapping[i]`` (a folder's classes as the
    weights' outputs: normsweep.data.classes)."""
    moved = copy.copy(split)
    moved.labels = torch.as_tensor(list(mapping), dtype=torch.int64, device=split.labels.device)[split.labels]
    return moved


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
    from normsweep.data.mnist import load_mnist

    train = load_mnist(root, train=True, limit=subsets[0])
    test = load_mnist(root, train=False, limit=subsets[1])
    return (
        TensorData.from_uint8(train.images, train.labels),
        TensorData.from_uint8(test.images, test.labels),
        10,
    )
