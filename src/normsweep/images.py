"""An ImageFolder data set (``root/train/<class>/*.jpg``, ``root/val/<class>/*.jpg``) decoded,
resized and center-cropped once, then kept as a uint8 tensor file: the normalization grid
then pays the JPEG decode once per data set, not once per cell and epoch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets, transforms

from . import tensorfile
from .data import DataError

SPLITS = ("train", "val")


@dataclass
class ImageSplit:
    images: torch.Tensor  # uint8, N x 3 x crop x crop
    labels: torch.Tensor  # int64, N
    classes: list[str]


def cache_path(folder: str | Path, split: str, resize: int, crop: int) -> Path:
    return Path(folder) / f"{split}-r{resize}-c{crop}.pt"


def _signature(files: list[str]) -> str:
    """Names, sizes and modification times: a changed file invalidates the cache."""
    digest = hashlib.sha256()
    for name in files:
        stat = Path(name).stat()
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _listing(root: str | Path, split: str) -> datasets.ImageFolder:
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(
            f"{folder}: no such folder. An ImageFolder data set needs {Path(root)}/train/<class>/ "
            f"and {Path(root)}/val/<class>/ with images in them."
        )
    try:
        return datasets.ImageFolder(str(folder))
    except FileNotFoundError as error:  # no class folder, or no image in them
        raise DataError(f"{folder}: {error}. Put each class's images in {folder}/<class>/.") from None


def decode(root: str | Path, split: str, resize: int, crop: int) -> ImageSplit:
    """Decode every image of a split: RGB, Resize(resize), CenterCrop(crop), as uint8."""
    listing = _listing(root, split)
    prepare = transforms.Compose(
        [transforms.Resize(resize), transforms.CenterCrop(crop), transforms.PILToTensor()]
    )
    images = torch.empty((len(listing.samples), 3, crop, crop), dtype=torch.uint8)
    for i, (path, _) in enumerate(listing.samples):
        try:
            with Image.open(path) as image:
                images[i] = prepare(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path}: not a readable image ({error}); remove or replace it") from None
    labels = torch.tensor([label for _, label in listing.samples], dtype=torch.int64)
    return ImageSplit(images, labels, list(listing.classes))


def load_cached(root: str | Path, split: str, resize: int, crop: int, cache_folder: str | Path) -> ImageSplit:
    """The split from its tensor cache, decoding (and caching) it when the cache is missing
    or the image files changed."""
    listing = _listing(root, split)
    files = [path for path, _ in listing.samples]
    signature = _signature(files)
    path = cache_path(cache_folder, split, resize, crop)
    if path.exists():
        cached = tensorfile.load(path, "image cache")
        if cached.get("signature") == signature:
            return ImageSplit(cached["images"], cached["labels"], cached["classes"])
    split_data = decode(root, split, resize, crop)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(
        {
            "images": split_data.images,
            "labels": split_data.labels,
            "classes": split_data.classes,
            "signature": signature,
            "files": files,
        },
        tmp,
    )
    tmp.replace(path)
    return split_data


def read_cache(folder: str | Path, split: str, resize: int, crop: int) -> ImageSplit:
    """A split from the cache the data check made, without listing the image folder again
    (a cell must not stat a million files on a shared file system)."""
    path = cache_path(folder, split, resize, crop)
    if not path.exists():
        raise DataError(f"{path}: no tensor cache; the check_data rule makes it (rerun snakemake)")
    cached = tensorfile.load(path, "image cache")
    return ImageSplit(cached["images"], cached["labels"], cached["classes"])


def describe(root: str | Path) -> dict[str, object]:
    """What check_data records of an ImageFolder: classes and image counts per split."""
    out: dict[str, object] = {"root": str(root)}
    for split in SPLITS:
        listing = _listing(root, split)
        out[split] = {"images": len(listing.samples), "classes": listing.classes}
    train_classes, val_classes = out["train"]["classes"], out["val"]["classes"]  # type: ignore[index]
    if train_classes != val_classes:
        raise DataError(f"{root}: train/ has classes {train_classes} but val/ has {val_classes}")
    return json.loads(json.dumps(out))


def stratified_sample(labels: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor | None:
    """The indices (in their original order) of a seeded, class-stratified sample of ``n`` of
    ``labels``: each class gets its share of ``n`` (largest remainders, at least one image per
    class while ``n`` allows), drawn at random within the class. The same labels, ``n`` and seed
    give the same sample, so every cell of a study sees the same images. None: all of them.

    An ImageFolder lists its files class by class, so its first ``n`` files are one class (a
    ``test_subset: 100`` of a 10-class folder measured accuracy 0.0000, every image class 0)."""
    total = int(labels.numel())
    if n is None or n >= total:
        return None
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    share = exact.floor().long()
    if n >= len(classes):
        share = share.clamp(min=1)  # every class present
    left = n - int(share.sum())
    if left > 0:  # the largest remainders get one more
        order = torch.argsort(exact - exact.floor(), descending=True, stable=True)
        for i in order[:left]:
            share[i] += 1
    elif left < 0:  # the clamp took more than n: one fewer from the largest classes
        for i in torch.argsort(share, descending=True, stable=True)[:-left]:
            share[i] -= 1
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls, k in zip(classes.tolist(), share.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.sort(torch.cat(picked)).values
