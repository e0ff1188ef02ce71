"""Pretrained 1000-class weights on a folder of a few ImageNet classes named by their
WordNet ids score on the weights' own outputs, not on a new random head (chance); weights whose
classes cannot be matched are refused for evaluation only and recorded when trained."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from normsweep.analysis import comparisons, table
from normsweep.analysis.summary import summary_markdown
from normsweep.core.spec import TrainConfig
from normsweep.data import classes, prepare
from normsweep.study.config import ConfigError, validate_config
from normsweep.training.runner import cell_data, cell_spec, train_cells

WNIDS = {"n01440764": 0, "n02102040": 1, "n02979186": 2}  # tench red, springer green, cassette blue

STAND_IN = """
import torch.nn as nn


class ColorNet(nn.Module):
    # a stand-in for an ImageNet network: 1000 outputs, deterministic once its weights are loaded
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.conv1(x)).flatten(1))
"""


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The stand-in's module and a 1000-class weights file: the output of each wnid reads the
    color of that class's images (everything else far below)."""
    folder = tmp_path_factory.mktemp("standin")
    (folder / "standin_nets.py").write_text(STAND_IN)
    index = classes.wnid_map(list(WNIDS))
    state = {
        "conv1.weight": torch.eye(3).reshape(3, 3, 1, 1),
        "conv1.bias": torch.zeros(3),
        "fc.weight": torch.zeros(1000, 3),
        "fc.bias": torch.full((1000,), -5.0),
    }
    for channel, output in zip(WNIDS.values(), index, strict=True):
        state["fc.weight"][output, channel] = 10.0
    file = folder / "colornet-1k.pt"
    torch.save(state, file)
    return folder, file, hashlib.sha256(file.read_bytes()).hexdigest()


def color_folder(root, names, val_classes=None):
    """train/ and val/ with two solid-color PNGs per class (class i: color channel i)."""
    for split in ("train", "val"):
        for i, name in enumerate(names):
            if split == "val" and val_classes is not None and name not in val_classes:
                continue
            (root / split / name).mkdir(parents=True)
            for k in range(2):
                pixels = np.zeros((24, 24, 3), dtype=np.uint8)
                pixels[..., i] = 200 + 20 * k
                Image.fromarray(pixels).save(root / split / name / f"{k}.png")
    return root


def block(folder, file, sha, epochs=0, **extra):
    return {"arch": "standin_nets:ColorNet", "data": str(folder), "image": {"resize": 16, "crop": 16},
            "weights": str(file), "weights_sha256": sha, "references": {"none": "none"},
            "training": {"epochs": epochs, "test_batch_size": 8, "batch_size": 2, "threads": 1}, **extra}  # fmt: skip


def evaluate(model_config, prepared, epochs=0):
    train, test, n, head = cell_data("colornet", model_config, prepared)
    specs = [
        cell_spec("colornet", m, s, 1998, model_config, None, n, head=head) for m, s in [("none", "none")]
    ]
    return head, train_cells(specs, train, test, TrainConfig(epochs=epochs, batch_size=2, test_batch_size=8))[
        0
    ]


def test_the_wnid_index_is_the_weights_order():
    wnids = classes.imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids) and wnids[0] == "n01440764"
    assert classes.wnid_map(list(wnids)) == list(range(1000))  # all of ImageNet: the identity
    assert classes.wnid_map(["n02979186", "n01440764"]) == [482, 0]  # a subset, in the folder's order
    assert classes.wnid_map(["n01440764", "cat"]) is None and classes.wnid_map(["n99999999"]) is None
    assert classes.plan_head(["a", "b"], False, 1000).kind == "new"
    assert classes.plan_head(["n01440764"], True, 1000).kind == "mapped"
    assert classes.plan_head(["a", "b"], True, 2).kind == "kept"
    assert classes.plan_head(["a", "b"], True, 1000) == classes.Head("replaced", 2, None, 1000)


def test_three_wnid_classes_score_the_weights_own_outputs(weights, tmp_path, monkeypatch):
    module, file, sha = weights
    monkeypatch.syspath_prepend(str(module))
    folder = color_folder(tmp_path / "photos", list(WNIDS))
    prepared = tmp_path / "prepared"
    prepare.prepare_folder(folder, prepared, 16, 16)
    head, result = evaluate(block(folder, file, sha), prepared)
    assert head.kind == "mapped" and result.head == "mapped" and result.predict_over == "all"
    assert result.final_accuracy == 1.0  # a new random 3-class head scored 1/3 here
    assert set(result.predictions.tolist()) == {0, 217, 482}  # the argmax over all 1000 outputs
    _, folder_only = evaluate(block(folder, file, sha, predict_over="folder"), prepared)
    assert folder_only.final_accuracy == 1.0 and set(folder_only.predictions.tolist()) == {0, 1, 2}


def test_a_val_split_missing_a_class_keeps_the_training_classes_index(weights, tmp_path, monkeypatch):
    module, file, sha = weights
    monkeypatch.syspath_prepend(str(module))
    folder = color_folder(tmp_path / "photos", list(WNIDS), val_classes={"n01440764", "n02979186"})
    listing = prepare.list_folder(folder)
    assert listing["val"]["classes"] == list(WNIDS) and sorted(set(listing["val"]["labels"])) == [0, 2]
    prepared = tmp_path / "prepared"
    prepare.prepare_folder(folder, prepared, 16, 16)
    _, result = evaluate(block(folder, file, sha), prepared)
    assert result.final_accuracy == 1.0 and result.n_test == 4


def test_unmatched_weights_are_refused_for_evaluation_and_recorded_when_trained(
    weights, tmp_path, monkeypatch
):
    module, file, sha = weights
    monkeypatch.syspath_prepend(str(module))
    folder = color_folder(tmp_path / "photos", ["red", "green", "blue"])
    with pytest.raises(ConfigError, match=r"weights .*colornet-1k.pt have 1000 outputs but .*photos has 3 classes"
                                          r".*training.epochs >= 1"):  # fmt: skip
        validate_config({"models": {"colornet": block(folder, file, sha)}})
    validate_config({"models": {"colornet": block(folder, file, sha, epochs=1)}})  # training the head: fine
    prepared = tmp_path / "prepared"
    prepare.prepare_folder(folder, prepared, 16, 16)
    head, result = evaluate(block(folder, file, sha, epochs=1), prepared, epochs=1)
    assert head.kind == "replaced" and result.head == "replaced"
    summary = comparisons.summarize(table.cells_table([result], {}))
    assert "replaced by a new random one in 1 cells" in summary_markdown(summary)
