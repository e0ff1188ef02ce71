"""ImageNet's validation split as it ships: one flat folder of 50,000 JPEGs
(``val/ILSVRC2012_val_00000001.JPEG`` ...) and its labels, read where they are.

Two sources of labels are read, the first found wins:

- the labels CSV of the common mirrors (Kaggle's ``LOC_val_solution.csv``: ``ImageId`` and a
  ``PredictionString`` whose first word is the image's WordNet id), beside ``val/`` or in it;
- the devkit (``ILSVRC2012_devkit_t12/``, unpacked beside ``val/``): ``data/
  ILSVRC2012_validation_ground_truth.txt`` gives each image's ILSVRC2012_ID (line i: image i)
  and ``data/meta.mat`` maps those ids to WordNet ids (read with scipy).

The classes are the WordNet ids, sorted as ImageFolder sorts ImageNet's train/ folders, so a
flat val/ pairs with a train/ of class folders and with pretrained weights' class index
(:mod:`normsweep.data.classes`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from normsweep.core.errors import DataError

CSV_NAME = "LOC_val_solution.csv"
DEVKIT = Path("ILSVRC2012_devkit_t12") / "data"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def is_flat(folder: Path) -> bool:
    """A split folder holding image files and no class folders."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    return not any(e.is_dir() for e in entries) and any(
        e.is_file() and not e.name.startswith(".") for e in entries
    )


def labels_source(folder: Path) -> Path | None:
    for candidate in (folder.parent / CSV_NAME, folder / CSV_NAME, folder.parent / DEVKIT / GROUND_TRUTH):
        if candidate.is_file():
            return candidate
    return None


def flat_labels(folder: Path) -> dict[str, str]:
    """Each image file name of a flat validation folder with its WordNet id."""
    source = labels_source(folder)
    if source is None:
        raise DataError(
            f"{folder}: image files but no class folders, and no labels for them: put ImageNet's "
            f"{CSV_NAME} (ImageId,PredictionString) beside it, or unpack the devkit "
            f"(ILSVRC2012_devkit_t12/) beside it, or sort the images into {folder}/<class>/ folders"
        )
    if source.suffix == ".csv":
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"ImageId", "PredictionString"} <= set(rows[0]):
            raise DataError(
                f"{source}: expected the columns ImageId,PredictionString (the mirrors' labels CSV)"
            )
        by_id = {row["ImageId"]: row["PredictionString"].split()[0] for row in rows}
    else:
        ids = [int(line) for line in source.read_text().split()]
        wnid_of = devkit_wnids(source.parent / "meta.mat")
        by_id = {
            f"ILSVRC2012_val_{i:08d}": wnid_of[label]
            for i, label in enumerate(ids, start=1)
            if label in wnid_of
        }
    files = sorted(e.name for e in folder.iterdir() if e.is_file() and not e.name.startswith("."))
    labelled = {name: by_id[Path(name).stem] for name in files if Path(name).stem in by_id}
    if not labelled:
        raise DataError(f"{folder}: none of its {len(files)} files is named in {source}")
    return labelled


def devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id, from the devkit's meta.mat (its 1000 leaf classes)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(
            f"{meta}: reading the devkit needs scipy (pip install scipy), or use {CSV_NAME}"
        ) from None
    if not meta.is_file():
        raise DataError(f"{meta}: missing; the devkit's data/ folder holds meta.mat beside {GROUND_TRUTH}")
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
