"""An ImageFolder data set (``root/train/<class>/*.jpg``, ``root/val/<class>/*.jpg``) prepared
once into shards of uint8 pixels, then streamed batch by batch by every cell.

The folder is listed once (:func:`list_folder`, a file: the workflow's ``list_images``), then
each shard of ``shard_size`` images is decoded, resized and center-cropped by its own job
(:func:`prepare_shard`): RGB, ``Resize(resize)``, ``CenterCrop(crop)`` with PIL, exactly the
notebook's ``ImageFolder`` + ``transforms`` pixels, stored as a numpy ``.npy`` file of
N x 3 x crop x crop uint8 (150 KB per image at 224 px) beside a JSON manifest (files, labels,
the transform, a sha256 of the pixel file, and a 256-bin histogram per channel from which the
data set's exact statistics are summed). A cell reads a batch with one ``pread`` per run of
consecutive images (:class:`ShardedSplit`): nothing is decoded per epoch, and its memory is the
batch, whatever the data set's size (no memory map: its touched pages would count as resident).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from normsweep.core import files as files_io
from normsweep.core.errors import DataError
from normsweep.data import imagenet

SPLITS = ("train", "val")
#: How a shard's pixels were made and stored (recorded in each manifest).
STORAGE = "npy uint8 N x 3 x crop x crop"
INTERPOLATION = "PIL bilinear (torchvision Resize default, antialiased)"


def interpolation_text(mode: str = "bilinear") -> str:
    return INTERPOLATION if mode == "bilinear" else f"PIL {mode} (antialiased)"


#: Images per shard: a 20,000-image split is two shards, ImageNet's train split 129 jobs.
DEFAULT_SHARD_SIZE = 10_000


#: The file endings ImageFolder reads (torchvision's IMG_EXTENSIONS; tests/test_images.py checks
#: them, and the listing, against torchvision).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def class_folders(folder: str | Path) -> list[str]:
    """ImageFolder's classes of a split: its sub-folders, sorted (as torchvision's find_classes).
    The listing's labels and the weights' class index (data.classes) both read them here."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _class_samples(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """ImageFolder's classes and (path, label) samples in its order, without importing torch:
    a listing job on the login node starts in a fraction of a second instead of seconds."""
    classes = class_folders(folder)
    if not classes:
        raise DataError(f"{folder}: no class folder. Put each class's images in {folder}/<class>/.")
    samples: list[tuple[str, int]] = []
    empty = []
    for label, name in enumerate(classes):
        found = len(samples)
        for root, _, names in sorted(os.walk(os.path.join(folder, name), followlinks=True)):
            samples += [
                (os.path.join(root, f), label) for f in sorted(names) if f.lower().endswith(IMG_EXTENSIONS)
            ]
        if len(samples) == found:
            empty.append(name)
    if empty:
        raise DataError(
            f"{folder}: no image ({', '.join(IMG_EXTENSIONS)}) in the class folders {', '.join(empty)}. "
            f"Put each class's images in {folder}/<class>/, or remove the empty folders."
        )
    return classes, samples


def _classes(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    if not folder.is_dir():
        root = folder.parent
        raise DataError(
            f"{folder}: no such folder. An ImageFolder data set needs {root}/train/<class>/ "
            f"and {root}/val/<class>/ with images in them."
        )
    if imagenet.is_flat(folder):  # ImageNet's validation split as it ships: labels from a file
        labelled = imagenet.flat_labels(folder)
        classes = sorted(set(labelled.values()))
        index = {c: i for i, c in enumerate(classes)}
        return classes, [(str(folder / name), index[wnid]) for name, wnid in labelled.items()]
    return _class_samples(folder)


def shard_signature(files: Sequence[str], stamps: Sequence[Sequence[int]]) -> str:
    """Names, sizes and modification times of a shard's images: a changed image changes it."""
    digest = hashlib.sha256()
    for name, (size, mtime) in zip(files, stamps, strict=True):
        digest.update(f"{name}|{size}|{mtime}\n".encode())
    return digest.hexdigest()[:16]


def list_split(root: str | Path, split: str, shard_size: int = DEFAULT_SHARD_SIZE) -> dict[str, Any]:
    """One split's classes, files (relative to the split), labels, sizes and times, and its
    shards (``start``, ``stop``, ``signature``) in ImageFolder's order."""
    folder = Path(root) / split
    classes, samples = _classes(folder)
    files, labels, stamps = [], [], []
    for path, label in samples:
        stat = os.stat(path)
        files.append(os.path.relpath(path, folder))
        labels.append(int(label))
        stamps.append([int(stat.st_size), int(stat.st_mtime_ns)])
    shards = [
        {"start": lo, "stop": min(lo + shard_size, len(files)),
         "signature": shard_signature(files[lo : lo + shard_size], stamps[lo : lo + shard_size])}
        for lo in range(0, len(files), shard_size)
    ]  # fmt: skip
    return {"classes": classes, "files": files, "labels": labels, "stamps": stamps, "shards": shards}


def list_folder(
    root: str | Path, shard_size: int = DEFAULT_SHARD_SIZE, splits: Sequence[str] = SPLITS
) -> dict[str, Any]:
    """The listing of the splits (what the shards are made from; both, checked to hold the same
    classes, or val/ alone for an evaluation-only study)."""
    out: dict[str, Any] = {"root": str(root), "shard_size": shard_size}
    for split in splits:
        out[split] = list_split(root, split, shard_size)
    if len(splits) == 2 and out["train"]["classes"] != out["val"]["classes"]:
        train, val = out["train"]["classes"], out["val"]["classes"]
        if not set(val) <= set(train):
            raise DataError(
                f"{root}: val/ has classes that train/ has not: {sorted(set(val) - set(train))}; "
                "a network cannot be tested on classes it never trained on"
            )
        index = {c: i for i, c in enumerate(train)}  # val/ without some classes: labels as train/'s
        out["val"]["labels"] = [index[val[label]] for label in out["val"]["labels"]]
        out["val"]["classes"] = list(train)
    return out


def folder_stamp(root: str | Path, splits: Sequence[str] = SPLITS) -> str:
    """A cheap fingerprint of an ImageFolder for planning: the modification times of its split
    and class folders (a file added, removed or replaced by a rename changes one). It decides
    when the folder is listed again; the listing's per-file times then decide which shards are
    prepared again. "missing" when the folder is not there (the listing then says what is wrong)."""
    digest = hashlib.sha256()
    try:
        for split in splits:
            folder = Path(root) / split
            digest.update(f"{split}|{folder.stat().st_mtime_ns}\n".encode())
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_dir():
                    digest.update(f"{entry.name}|{entry.stat().st_mtime_ns}\n".encode())
    except OSError:
        return "missing"
    return digest.hexdigest()[:16]


#: torchvision's InterpolationMode values and the PIL filters its Resize hands a PIL image
#: (torchvision.transforms.functional.pil_modes_mapping).
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_crop(image: Image.Image, resize: int, crop: int, interpolation: str = "bilinear") -> Image.Image:
    """torchvision's ``Resize(resize, interpolation)`` then ``CenterCrop(crop)`` on a PIL image,
    step for step with PIL alone, so that a shard job imports no torch (4 CPU-s);
    tests/test_images.py checks the pixels against torchvision's."""
    if interpolation not in PIL_FILTERS:
        raise ValueError(f"interpolation {interpolation!r}: not one of {', '.join(PIL_FILTERS)}")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_short, new_long = resize, int(resize * long / short)  # the shorter side to resize
    size = (new_short, new_long) if width <= height else (new_long, new_short)
    if size != image.size:
        image = image.resize(size, PIL_FILTERS[interpolation])
    width, height = image.size
    if crop > width or crop > height:  # padded with black around, as CenterCrop does
        pad_w, pad_h = max(crop - width, 0), max(crop - height, 0)
        border = (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2)
        image = ImageOps.expand(image, border=border, fill=0)
        width, height = image.size
    top, left = int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def decode_image(path: str | Path, resize: int, crop: int, interpolation: str = "bilinear") -> np.ndarray:
    """One image as the notebook's pipeline sees it, before ToTensor's division by 255:
    ImageFolder's loader (RGB), Resize(resize) (bilinear unless a pretrained model's own
    preprocessing says otherwise), CenterCrop(crop); 3 x crop x crop uint8."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(
                resize_crop(image.convert("RGB"), resize, crop, interpolation), dtype=np.uint8
            )
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({error}); remove or replace it") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def shard_transform(resize: int, crop: int, interpolation: str = "bilinear") -> dict[str, Any]:
    """How a shard's pixels are made and stored, as its manifest records it."""
    return {
        "resize": resize,
        "crop": crop,
        "interpolation": interpolation_text(interpolation),
        "storage": STORAGE,
    }


def prepare_shard(
    root: str | Path,
    listing: dict[str, Any],
    split: str,
    index: int,
    resize: int,
    crop: int,
    out: str | Path,
    interpolation: str = "bilinear",
) -> dict[str, Any]:
    """Decode shard ``index`` of ``split`` (from the listing) into ``out`` (.npy, written to a
    temporary file of this writer, flushed, then renamed: :func:`normsweep.core.files.writing`);
    return its manifest. Memory: one image at a time."""
    part = listing[split]
    shard = part["shards"][index]
    lo, hi = shard["start"], shard["stop"]
    files = part["files"][lo:hi]
    out = Path(out)
    digest = hashlib.sha256()
    histogram = np.zeros((3, 256), dtype=np.int64)
    with files_io.writing(out) as tmp, open(tmp, "wb") as handle:
        header = _npy_header((len(files), 3, crop, crop))
        handle.write(header)
        digest.update(header)
        for name in files:
            pixels = decode_image(Path(root) / split / name, resize, crop, interpolation)
            for c in range(3):
                histogram[c] += np.bincount(pixels[c].ravel(), minlength=256)
            handle.write(pixels)  # contiguous: written and hashed from its buffer, no copy
            digest.update(pixels)
    return {
        "split": split,
        "index": index,
        "pixels": out.name,
        "shape": [len(files), 3, crop, crop],
        "header_bytes": len(header),
        "sha256": digest.hexdigest(),
        "signature": shard["signature"],
        "transform": shard_transform(resize, crop, interpolation),
        "files": files,  # no labels: they follow the class list of the listing (data_record)
        "histogram": histogram.tolist(),
    }


def listed_splits(listing: dict[str, Any]) -> list[str]:
    """The splits a listing holds: both, or val/ alone (an evaluation-only study)."""
    return [split for split in SPLITS if split in listing]


def shard_stem(split: str, index: int) -> str:
    """Where a shard lives in a data folder: ``<stem>.npy`` (pixels) and ``<stem>.json`` (manifest)."""
    return f"shards/{split}-{index:05d}"


def data_record(
    root: str | Path,
    image: dict[str, Any],
    listing: dict[str, Any],
    manifests: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """What the data check records (``files.json``): per split its image count, classes and
    shard manifests, in order (``manifests``: their paths, e.g. in the data cache; default: in
    the record's own folder); readers open the shards from it."""
    record: dict[str, Any] = {"root": str(root), "image": dict(image)}
    for split in listed_splits(listing):
        part = listing[split]
        record[split] = {
            "images": len(part["files"]),
            "classes": part["classes"],
            # the labels as this listing numbers them: a shard in a shared cache holds pixels only
            "labels": runs(part["labels"]),
            "signatures": [shard["signature"] for shard in part["shards"]],
            "shards": (manifests or {}).get(split)
            or [f"{shard_stem(split, i)}.json" for i in range(len(part["shards"]))],
        }
    return record


def runs(labels: Sequence[int]) -> list[list[int]]:
    """Labels as [label, count] runs (an ImageFolder lists its files class by class: ImageNet's
    1.28 M training labels are 1,000 runs)."""
    out: list[list[int]] = []
    for label in labels:
        if out and out[-1][0] == label:
            out[-1][1] += 1
        else:
            out.append([int(label), 1])
    return out


def from_runs(encoded: Sequence[Sequence[int]]) -> list[int]:
    return [int(label) for label, count in encoded for _ in range(int(count))]


def prepare_folder(
    root: str | Path,
    folder: str | Path,
    resize: int,
    crop: int,
    shard_size: int = DEFAULT_SHARD_SIZE,
    interpolation: str = "bilinear",
) -> dict[str, Any]:
    """List, prepare every shard and record, in one process: what the workflow's data jobs do
    (one job per shard), for a script or a test. Returns the record."""
    from normsweep.core.results import write_json_atomic

    folder = Path(folder)
    listing = list_folder(root, shard_size)
    for split in SPLITS:
        for index in range(len(listing[split]["shards"])):
            stem = folder / shard_stem(split, index)
            manifest = prepare_shard(
                root, listing, split, index, resize, crop, stem.with_suffix(".npy"), interpolation
            )
            write_json_atomic(stem.with_suffix(".json"), manifest)
    record = data_record(root, {"resize": resize, "crop": crop, "shard_size": shard_size}, listing)
    write_json_atomic(folder / "files.json", record)
    return record


def read_manifest(path: str | Path) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def histogram_stats(manifests: Sequence[dict[str, Any]]) -> tuple[list[float], list[float], int, int]:
    """Exact per-channel mean and (population) std on the [0, 1] scale, summed from the shards'
    histograms: every pixel counted once, no per-batch averaging. Also images and pixels per channel."""
    counts = sum((np.asarray(m["histogram"], dtype=np.float64) for m in manifests), np.zeros((3, 256)))
    levels = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = (counts * levels).sum(axis=1) / total
    var = (counts * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return mean.tolist(), np.sqrt(var).tolist(), sum(m["shape"][0] for m in manifests), int(total[0])
