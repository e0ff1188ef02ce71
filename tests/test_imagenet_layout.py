"""ImageNet's validation split as it ships (one flat folder of JPEGs and its labels,
from the mirrors' CSV or the devkit), read directly: a tiny fake of that layout made of the
real ILSVRC2012 validation photos in data/imagenette-tiny."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from normsweep.core.errors import DataError
from normsweep.data import classes, prepare

TINY = Path(__file__).resolve().parents[1] / "data" / "imagenette-tiny"


def official_layout(root: Path) -> dict[str, str]:
    """train/<wnid>/ as it is, val/ flat; returns each val file's true wnid."""
    shutil.copytree(TINY / "train", root / "train")
    (root / "val").mkdir()
    truth = {}
    for photo in sorted((TINY / "val").glob("*/*.JPEG")):
        shutil.copy(photo, root / "val" / photo.name)
        truth[photo.name] = photo.parent.name
    return truth


def write_csv(root: Path, truth: dict[str, str]) -> None:
    rows = [f"{Path(name).stem},{wnid} 1 2 100 200" for name, wnid in truth.items()]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


def write_devkit(root: Path, truth: dict[str, str]) -> None:
    """The devkit's ground truth (line i: image i's ILSVRC2012_ID) and meta.mat (id -> wnid);
    ids are not the sorted-wnid index, as in the real devkit."""
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    wnids = sorted(set(truth.values()))
    ids = {wnid: 500 + 7 * k for k, wnid in enumerate(wnids)}  # any ids: meta.mat maps them
    numbers = {int(Path(name).stem.rsplit("_", 1)[1]): wnid for name, wnid in truth.items()}
    lines = [str(ids[numbers[i]]) if i in numbers else "1" for i in range(1, max(numbers) + 1)]
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    synsets = np.zeros(len(wnids) + 1, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for k, wnid in enumerate(wnids):
        synsets[k] = (ids[wnid], wnid, 0)
    synsets[-1] = (1001, "n00001740", 3)  # a parent synset: not a class
    savemat(data / "meta.mat", {"synsets": synsets})


@pytest.mark.parametrize("labels", [write_csv, write_devkit])
def test_a_flat_val_folder_is_read_with_its_labels(tmp_path, labels):
    truth = official_layout(tmp_path)
    labels(tmp_path, truth)
    listing = prepare.list_folder(tmp_path, shard_size=8)
    val = listing["val"]
    assert val["classes"] == listing["train"]["classes"] == sorted(set(truth.values()))
    assert {f: val["classes"][label] for f, label in zip(val["files"], val["labels"], strict=True)} == truth
    assert classes.folder_classes(tmp_path) == val["classes"]  # the weights' class index sees them too
    record = prepare.prepare_folder(tmp_path, tmp_path / "prepared", 40, 32, shard_size=8)
    assert record["val"]["images"] == 12


def test_a_flat_val_folder_without_labels_names_the_files_to_add(tmp_path):
    official_layout(tmp_path)
    with pytest.raises(
        DataError, match=r"val: image files but no class folders.*LOC_val_solution.csv.*devkit"
    ):
        prepare.list_folder(tmp_path)
