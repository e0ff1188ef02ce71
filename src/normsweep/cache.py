"""One prepared copy of an ImageFolder per (folder, split, resize, crop, interpolation), shared by
every model and every study that asks for it: the data cache (``data_cache``, default
``results/data``; a lab points all its studies at one folder on scratch).

A shard lives at ``<data_cache>/<key>/<split>-<index>-<signature>.npy`` beside its manifest
(``.json``): the key names the folder and the preprocessing (:func:`normsweep.cells.data_key`),
the signature the shard's images (names, sizes, times), so a changed image makes a new file
and never rewrites one another study reads. The workflow's prepare jobs write through
:func:`provide_shard`:

- under an exclusive lock (``flock`` on ``<shard>.lock``), so that two studies preparing the
  same shard at once do it once: the second waits, then reuses the first's copy;
- a copy already there is reused only when its manifest's signature and transform are the
  asked ones and the pixel file's sha256 is the manifest's (a damaged file is prepared again);
- a shard a study prepared in its own folder before the cache existed is linked (or copied)
  in, not decoded again;
- else the shard is decoded (:func:`normsweep.images.prepare_shard`, a temporary file then a
  rename) and its manifest written atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DataError
from .images import prepare_shard, shard_stem, shard_transform


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (``<path>.lock``), across processes and machines that
    share the file system's locks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def usable(manifest: Path, pixels: Path, signature: str, transform: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a prepared shard that holds what is asked, checked by its sha256; None
    when it is missing, of other images or another transform, or damaged."""
    try:
        kept = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if kept.get("signature") != signature or kept.get("transform") != transform or not pixels.is_file():
        return None
    return kept if file_sha256(pixels) == kept.get("sha256") else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def provide_shard(
    listings: Sequence[str | Path],
    split: str,
    index: int,
    signature: str,
    image: dict[str, Any],
    pixels: str | Path,
    manifest: str | Path,
) -> tuple[dict[str, Any], str]:
    """Shard ``index`` of ``split`` (its images: ``signature``) at ``pixels`` and ``manifest``
    in the cache, from whichever listing in ``listings`` has it; its manifest and how it came
    there: ``reused``, ``linked from <file>`` or ``prepared``."""
    pixels, manifest = Path(pixels), Path(manifest)
    found = [(Path(p), json.loads(Path(p).read_text())) for p in listings]
    matching = [(p, listing) for p, listing in found if _signature(listing, split, index) == signature]
    if not matching:
        raise DataError(
            f"{split} shard {index}: no listing holds it with these images any more; rerun snakemake"
        )
    listing_path, listing = matching[0]
    interpolation = image.get("interpolation") or "bilinear"
    transform = shard_transform(image["resize"], image["crop"], interpolation)
    with locked(pixels):
        if (kept := usable(manifest, pixels, signature, transform)) is not None:
            return kept, "reused"
        for path, _ in matching:  # a study's own shard from before the cache existed
            old = path.parent / f"{shard_stem(split, index)}.json"
            if (kept := usable(old, old.with_suffix(".npy"), signature, transform)) is not None:
                _link(old.with_suffix(".npy"), pixels)
                _write_json(manifest, {**kept, "pixels": pixels.name})
                return kept, f"linked from {old.with_suffix('.npy')}"
        made = prepare_shard(listing["root"], listing, split, index, image["resize"], image["crop"], pixels,
                             interpolation)  # fmt: skip
        _write_json(manifest, made)
        return made, "prepared"


def _signature(listing: dict[str, Any], split: str, index: int) -> str | None:
    shards = listing.get(split, {}).get("shards", [])
    return shards[index]["signature"] if index < len(shards) else None


def _link(source: Path, target: Path) -> None:
    """``source``'s bytes at ``target`` (a hard link when one file system holds both, else a
    copy), made under a temporary name then renamed."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def cache_paths(cache: str | Path, key: str, split: str, index: int, signature: str) -> tuple[Path, Path]:
    """Where a shard's pixels and manifest live in the cache."""
    stem = Path(cache) / key / f"{split}-{index:05d}-{signature}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")
