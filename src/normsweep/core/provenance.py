"""Which version of its data a result was made on: the data check records a version of the
content (``files.json``: ``version``), every result and checkpoint records the version it ran
on, and a study names the cells that ran on another (:func:`stale_cells`). Torch-free: the
workflow's parse, ``plan.py`` and the tables read it on a login node.

A version is a hash of what the cells see, never of a path: MNIST's four files by md5; an
ImageFolder's classes, labels and shards (each shard's signature: its files' names, sizes and
modification times). A folder changed in place (images added, removed, replaced) gets a new
version once it is listed again, which its folder's stamp decides (``images.folder_stamp``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: What a result made before versions were recorded says (it is compared with nothing).
UNRECORDED = ""


def mnist_raw_folder(root: str | os.PathLike[str]) -> Path:
    """Where MNIST's files are under its root (torchvision's layout)."""
    return Path(root) / "MNIST" / "raw"


def mnist_stamp(root: str | os.PathLike[str]) -> list[list[Any]]:
    """Names, sizes and modification times of the files in MNIST's folder (cheap: none is
    read); a file replaced or added changes it, and the data check then reads the md5 sums again."""
    try:
        entries = sorted(os.scandir(mnist_raw_folder(root)), key=lambda e: e.name)
    except OSError:
        return []
    return [[e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in entries if e.is_file()]


def content_version(record: Mapping[str, Any]) -> str:
    """The version of a data record's content: MNIST's md5 sums, or per split an ImageFolder's
    classes, labels and shard signatures (the root, a path, is left out)."""
    if "md5" in record:
        content: Any = {"md5": dict(sorted(record["md5"].items()))}
    else:
        content = {
            split: {k: record[split].get(k) for k in ("classes", "labels", "signatures")}
            for split in ("train", "val")
            if split in record
        }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_version(record_path: str | os.PathLike[str]) -> str:
    """The version a data record holds (UNRECORDED for a record from before versions, or none)."""
    try:
        return str(json.loads(Path(record_path).read_text()).get("version", UNRECORDED))
    except (OSError, ValueError):
        return UNRECORDED


def result_version(path: str | os.PathLike[str]) -> str:
    """The data version a cell result records (UNRECORDED when it has none or cannot be read)."""
    try:
        return str(json.loads(Path(path).read_text()).get("data_version", UNRECORDED))
    except (OSError, ValueError):
        return UNRECORDED


def stale_cells(
    results: Iterable[str | os.PathLike[str]], record_path: str | os.PathLike[str]
) -> dict[str, str]:
    """The finished results of ``results`` made on another data version than the record's:
    {path: its version}. Only results older than the record are read (a result written after
    the record was made from it), so a study whose data did not change reads none."""
    record = Path(record_path)
    try:
        written = record.stat().st_mtime_ns
    except OSError:
        return {}
    current = record_version(record)
    if current == UNRECORDED:
        return {}
    stale = {}
    for path in results:
        try:
            if os.stat(path).st_mtime_ns >= written:
                continue
        except OSError:  # not finished
            continue
        version = result_version(path)
        if version not in (UNRECORDED, current):
            stale[str(path)] = version
    return stale


def describe_stale(model: str, stale: Mapping[str, str], current: str, limit: int = 5) -> str:
    """What a user reads when cells ran on other data: which, and what to do."""
    shown = "\n  ".join(sorted(stale)[:limit]) + (
        f"\n  ... and {len(stale) - limit} more" if len(stale) > limit else ""
    )
    versions = ", ".join(sorted(set(stale.values())))
    return (
        f"model {model}: {len(stale)} finished cells ran on data version {versions}; the data now is "
        f"version {current} (its folder changed since they ran):\n  {shown}\n"
        "They are kept, and the tables mark them (column data_version, a note in the summary). To redo "
        "them on the current data, move those result files away and rerun; to keep them valid, "
        "restore the data as it was."
    )
