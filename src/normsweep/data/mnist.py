"""MNIST on disk: read the IDX files (gzip or plain) into tensors, check them, fetch them,
and compute the exact statistics of the training set. Torch is imported only where tensors are
made: the login node's data rules (check, statistics) run without it.

The files use torchvision's layout, ``<root>/MNIST/raw/<name>.gz``, so a folder made by
``torchvision.datasets.MNIST(root, download=True)`` works as it is, and so does ours.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from normsweep.core import provenance
from normsweep.core.errors import DataError

if TYPE_CHECKING:
    import torch

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
#: The official files' md5, the ones torchvision checks.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: A folder whose files are not the official ones (a subset) carries its own sums here.
MD5SUMS = "MD5SUMS"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


raw_folder = provenance.mnist_raw_folder


def mnist_paths(root: str | Path) -> dict[str, Path]:
    folder = raw_folder(root)
    return {key: folder / name for key, name in MNIST_FILES.items()}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzip-compressed or not."""
    path = Path(path)
    if not path.exists() and path.suffix == ".gz" and path.with_suffix("").exists():
        path = path.with_suffix("")
    if not path.exists():
        raise DataError(
            f"{path}: no such file. Point the config's data path at a folder holding "
            f"MNIST/raw/*.gz, or set download: true to fetch MNIST there."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); replace it with MNIST's file")
    ndim = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[content[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(content) - offset != expected:
        raise DataError(
            f"{path}: truncated or corrupt ({len(content) - offset} bytes of data, "
            f"{expected} expected for shape {shape}); delete it and fetch it again"
        )
    return np.frombuffer(content, dtype=dtype, offset=offset).reshape(shape)


@dataclass
class MnistSplit:
    images: torch.Tensor  # uint8, N x 28 x 28
    labels: torch.Tensor  # int64, N


def load_mnist(root: str | Path, train: bool, limit: int | None = None) -> MnistSplit:
    """One split of MNIST as tensors; ``limit`` keeps the first images (MNIST's order is
    already shuffled across classes)."""
    import torch

    images, labels = read_split(root, train, limit)
    return MnistSplit(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def read_split(root: str | Path, train: bool, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split's images (uint8, N x 28 x 28) and labels as read from the files, checked."""
    paths = mnist_paths(root)
    prefix = "train" if train else "test"
    images = read_idx(paths[f"{prefix}_images"])
    labels = read_idx(paths[f"{prefix}_labels"])
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths[f'{prefix}_images']}: {images.shape[0]} images but "
            f"{labels.shape[0]} labels in {paths[f'{prefix}_labels']}"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_md5(root: str | Path) -> dict[str, str]:
    """The sums to check against: the folder's MD5SUMS if it has one, else MNIST's own."""
    sums_file = raw_folder(root) / MD5SUMS
    if not sums_file.exists():
        return dict(MNIST_MD5)
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def verify_mnist(root: str | Path) -> dict[str, str]:
    """Check the four files' md5; returns them, raises :class:`DataError` naming a bad one."""
    expected = expected_md5(root)
    found = {}
    for path in mnist_paths(root).values():
        if not path.exists():
            raise DataError(
                f"{path}: missing. Set download: true in the config to fetch MNIST, or copy "
                f"the four MNIST .gz files into {path.parent}/"
            )
        digest = md5sum(path)
        want = expected.get(path.name)
        if want is None:
            raise DataError(f"{raw_folder(root) / MD5SUMS}: has no line for {path.name}")
        if digest != want:
            raise DataError(
                f"{path}: md5 {digest}, expected {want}. The file is corrupt or not MNIST: "
                f"delete it and run again to fetch it (download: true), or replace it."
            )
        found[path.name] = digest
    return found


def download_mnist(root: str | Path) -> None:
    """Fetch the official files with torchvision (md5-checked, skipped when present)."""
    from torchvision import datasets

    for train in (True, False):
        datasets.MNIST(str(root), train=train, download=True)
    verify_mnist(root)


def ensure_mnist(root: str | Path, download: bool) -> dict[str, str]:
    """Check the files; fetch them first when some are missing and ``download`` allows it.
    Files that are there but wrong are never overwritten: the error says what to do."""
    missing = [p for p in mnist_paths(root).values() if not p.exists()]
    if missing and download:
        download_mnist(root)
    return verify_mnist(root)


@dataclass(frozen=True)
class DatasetStats:
    """Exact per-channel mean and (population) std of all pixels, on the [0, 1] scale."""

    mean: list[float]
    std: list[float]
    n_images: int
    n_pixels_per_channel: int

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "std": self.std,
            "n_images": self.n_images,
            "n_pixels_per_channel": self.n_pixels_per_channel,
        }

    @classmethod
    def from_json(cls, path: str | Path) -> DatasetStats:
        raw = json.loads(Path(path).read_text())
        return cls(raw["mean"], raw["std"], raw["n_images"], raw["n_pixels_per_channel"])


def exact_stats(images: np.ndarray | torch.Tensor, channel_dim: int | None = None) -> DatasetStats:
    """Exact statistics of uint8 images (an array or a CPU tensor) over every pixel (not an
    average of per-batch values as in the notebook): a 256-bin histogram per channel, then
    float64 moments."""
    pixels_of = np.asarray(images)
    if pixels_of.dtype != np.uint8:
        raise TypeError(f"exact_stats expects uint8 images, got {images.dtype}")
    if channel_dim is None:
        channels = [pixels_of.reshape(-1)]
    else:
        channels = [
            pixels_of.take(c, axis=channel_dim).reshape(-1) for c in range(pixels_of.shape[channel_dim])
        ]
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for pixels in channels:
        counts = np.bincount(pixels, minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * levels).sum() / total)
        var = float((counts * (levels - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(var**0.5)
    return DatasetStats(means, stds, int(pixels_of.shape[0]), int(channels[0].size))
