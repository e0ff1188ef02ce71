"""One prepared copy of an ImageFolder per (folder, split, resize, crop, interpolation), shared by
every model and study (``data_cache``, default ``results/data``): ``<key>/<split>-<index>-<signature>.npy``
beside its manifest; the signature names the shard's images, so a changed image makes a new file.

:func:`provide_shard` is correct with no working lock (NFS ``nolock``, Lustre without ``flock``):
each writer writes a temporary file of its own, fsyncs and renames it, writers make identical
bytes, the manifest goes last and is checked on reuse; a lock only saves work; a damaged copy
is set aside, never deleted; an old study's own shard is linked in (copied where links fail).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from normsweep.core import files
from normsweep.core.errors import DataError
from normsweep.core.results import write_json_atomic
from normsweep.data.prepare import SPLITS, prepare_shard, shard_stem, shard_transform

log = logging.getLogger("normsweep")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (``<path>.lock``) where the file system gives one; a lock
    only saves work here (every write is correct without it), so where ``flock`` fails (ENOLCK,
    EOPNOTSUPP, ...) the caller goes on unlocked, with a warning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as error:
            log.warning("%s: no lock on this file system (%s); going on without one", path, error)
            yield
            return
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
    return _examine(manifest, pixels, signature, transform)[0]


def _examine(
    manifest: Path, pixels: Path, signature: str, transform: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """(the manifest when the shard is usable, why its pixel file is damaged when it is the
    asked shard's and does not match its manifest)."""
    try:
        kept = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None, None
    if kept.get("signature") != signature or kept.get("transform") != transform or not pixels.is_file():
        return None, None
    if file_sha256(pixels) == kept.get("sha256"):
        return kept, None
    return None, f"its sha256 is not its manifest's {manifest.name}"


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
    there: ``reused``, ``linked from <file>``, ``copied from <file>`` or ``prepared``. A listing is read only when the
    shard has to be decoded (ImageNet's is some hundred MB of JSON)."""
    pixels, manifest = Path(pixels), Path(manifest)
    interpolation = image.get("interpolation") or "bilinear"
    transform = shard_transform(image["resize"], image["crop"], interpolation)
    with locked(pixels):
        kept, damage = _examine(manifest, pixels, signature, transform)
        if kept is not None:
            return kept, "reused"
        if damage is not None:
            files.set_aside(pixels, damage)
        for path in map(Path, listings):  # a study's own shard from before the cache existed
            old = path.parent / f"{shard_stem(split, index)}.json"
            if (kept := usable(old, old.with_suffix(".npy"), signature, transform)) is not None:
                how = _link(old.with_suffix(".npy"), pixels)
                write_json_atomic(manifest, {**kept, "pixels": pixels.name})
                return kept, f"{how} from {old.with_suffix('.npy')}"
        listing = _holding(listings, split, index, signature)
        made = prepare_shard(listing["root"], listing, split, index, image["resize"], image["crop"], pixels,
                             interpolation)  # fmt: skip
        write_json_atomic(manifest, made)
        return made, "prepared"


def _holding(listings: Sequence[str | Path], split: str, index: int, signature: str) -> dict[str, Any]:
    """The first of ``listings`` whose shard ``index`` of ``split`` has ``signature``, read one by one."""
    for path in listings:
        listing = json.loads(Path(path).read_text())
        shards = listing.get(split, {}).get("shards", [])
        if index < len(shards) and shards[index]["signature"] == signature:
            return listing
    raise DataError(f"{split} shard {index}: no listing holds it with these images any more; rerun snakemake")


def _link(source: Path, target: Path) -> str:
    """``source``'s bytes at ``target``: a hard link where the file system makes one, else a copy
    (another file system: EXDEV; one without links: EPERM, EOPNOTSUPP), under this writer's
    temporary name, then published (:func:`normsweep.core.files.writing`); ``linked`` or ``copied``."""
    with files.writing(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError as error:
            log.info("%s: no link to %s (%s): copying it", target, source, error)
            shutil.copyfile(source, tmp)
            return "copied"
        return "linked"


def cache_paths(cache: str | Path, key: str, split: str, index: int, signature: str) -> tuple[Path, Path]:
    """Where a shard's pixels and manifest live in the cache."""
    stem = Path(cache) / key / f"{split}-{index:05d}-{signature}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def record_shards(record: dict[str, Any]) -> list[tuple[Path, Path]]:
    """Every shard a data record (``files.json``) names, as (manifest, pixel file)."""
    named = [Path(m) for split in SPLITS for m in record.get(split, {}).get("shards", [])]
    return [(m, m.with_suffix(".npy")) for m in named]


def missing_shards(record_file: str | Path) -> list[str]:
    """The pixel files of the shards the record at ``record_file`` names that are gone from the
    cache (deleted by hand), with those it lists as prepared again before (so that, used as a
    param, it stays the same once they are back); [] without a record."""
    path = Path(record_file)
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    missing = {str(npy) for m, npy in record_shards(record) if not (m.exists() and npy.exists())}
    return sorted(missing | set(record.get("repaired", [])))


def repaired_shards(record_file: str | Path) -> list[str]:
    """The pixel files of shards that the record at ``record_file`` names and that were made
    again after it was written (gone from the data cache, then prepared again), with those it
    already listed as such."""
    path = Path(record_file)
    if not path.exists():
        return []
    record, written = json.loads(path.read_text()), path.stat().st_mtime_ns
    again = {str(npy) for _, npy in record_shards(record)
             if npy.is_absolute() and npy.exists() and npy.stat().st_mtime_ns > written}  # fmt: skip
    return sorted(again | set(record.get("repaired", [])))
