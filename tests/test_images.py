"""ResNet18's data and model: the tiny ImageFolder shipped in the repo, its tensor cache,
clear errors for bad folders, and training that really trains (or not, at epochs=0)."""

import hashlib
import shutil

import pytest
import torch

from conftest import ROOT
from normsweep import images, train
from normsweep.data import DataError
from normsweep.models import ResNet18

TINY = ROOT / "data" / "imagenette-tiny"


def test_tiny_folder_decodes_to_uint8_crops():
    split = images.decode(TINY, "train", 72, 64)
    assert split.images.shape == (30, 3, 64, 64) and split.images.dtype == torch.uint8
    assert split.classes == ["n01440764", "n02102040", "n02979186"]
    assert split.labels.bincount().tolist() == [10, 10, 10]
    assert images.describe(TINY)["val"]["images"] == 12


def test_cache_is_reused_and_invalidated_when_an_image_changes(tmp_path):
    root = tmp_path / "folder"
    shutil.copytree(TINY, root)
    first = images.load_cached(root, "train", 72, 64, tmp_path / "cache")
    cache = images.cache_path(tmp_path / "cache", "train", 72, 64)
    stamp = cache.stat().st_mtime_ns
    again = images.load_cached(root, "train", 72, 64, tmp_path / "cache")
    assert torch.equal(first.images, again.images) and cache.stat().st_mtime_ns == stamp  # not decoded again
    victim = sorted((root / "train" / "n01440764").iterdir())[0]
    shutil.copy(sorted((root / "train" / "n02102040").iterdir())[0], victim)  # another photo, same name
    changed = images.load_cached(root, "train", 72, 64, tmp_path / "cache")
    assert not torch.equal(changed.images[0], first.images[0])
    assert torch.equal(images.read_cache(tmp_path / "cache", "train", 72, 64).images, changed.images)
    with pytest.raises(DataError, match="no tensor cache"):
        images.read_cache(tmp_path / "cache", "val", 72, 64)


def test_corrupt_and_empty_folders_name_the_path(tmp_path):
    root = tmp_path / "folder"
    shutil.copytree(TINY, root)
    bad = sorted((root / "val" / "n02979186").iterdir())[0]
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=bad.name + ": not a readable image"):
        images.decode(root, "val", 72, 64)
    empty = tmp_path / "empty"
    (empty / "train" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=str(empty / "train")):
        images.decode(empty, "train", 72, 64)
    with pytest.raises(DataError, match="no such folder"):
        images.describe(tmp_path / "nowhere")


def test_resnet18_replaces_its_last_layer_and_checks_weights(tmp_path):
    net = ResNet18(num_classes=3)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(ResNet18(num_classes=1000).net.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    loaded = ResNet18(num_classes=3, weights=str(weights), weights_sha256=digest[:16])
    reference = torch.load(weights, weights_only=True)
    assert torch.equal(loaded.net.conv1.weight, reference["conv1.weight"])
    with pytest.raises(ValueError, match="sha256"):
        ResNet18(num_classes=3, weights=str(weights), weights_sha256="0" * 16)
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        ResNet18(weights=str(tmp_path / "missing.pth"))


def small_split():
    split = images.decode(TINY, "train", 40, 32)
    return train.TensorData.from_uint8(split.images[:8], split.labels[:8])


def test_one_training_step_changes_the_weights_and_evaluation_does_not():
    data = small_split()
    torch.manual_seed(0)
    net = ResNet18(num_classes=3)
    before = [p.detach().clone() for p in net.parameters()]
    train.evaluate(net, data, 8)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    train.train_epoch(net, data, optimizer, 8, torch.Generator().manual_seed(0))  # one batch: one step
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_epochs_zero_is_evaluation_only(monkeypatch):
    data = small_split()
    monkeypatch.setattr(train, "train_epoch", lambda *a, **k: pytest.fail("trained at epochs=0"))
    spec = train.CellSpec(
        "resnet18",
        "imagefolder",
        "imagenet",
        "imagenet",
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
        1,
        num_classes=3,
    )
    result = train.train_cell(spec, data, data, train.TrainConfig(epochs=0, lr=0.01, threads=1))
    assert [e.epoch for e in result.epochs] == [0] and 0 <= result.final_accuracy <= 1


def test_a_subset_of_an_image_folder_is_a_stratified_seeded_sample():
    """Issue 17 (subsets): an ImageFolder lists class by class, so the first N images were one
    class; the sample has every class in proportion, the same indices for every cell."""
    labels = torch.tensor([0] * 100 + [1] * 100 + [2] * 50 + [3] * 5)  # in class order, as listed
    sample = images.stratified_sample(labels, 51, seed=0)
    counts = torch.bincount(labels[sample], minlength=4).tolist()
    assert sum(counts) == 51 and counts == [20, 20, 10, 1]  # each class its share
    assert torch.equal(sample, images.stratified_sample(labels, 51, seed=0))  # the same for every cell
    assert not torch.equal(sample, images.stratified_sample(labels, 51, seed=1))
    assert torch.equal(sample, torch.sort(sample).values) and len(set(sample.tolist())) == 51
    tiny = torch.bincount(labels[images.stratified_sample(labels, 4, seed=0)], minlength=4).tolist()
    assert tiny == [1, 1, 1, 1]  # every class while n allows, even the small one
    assert images.stratified_sample(labels, None) is None and images.stratified_sample(labels, 255) is None
    assert torch.bincount(labels[:51], minlength=4).tolist() == [51, 0, 0, 0]  # what the first N was


def test_a_cell_on_an_image_subset_sees_every_class(tmp_path):
    from normsweep.runner import load_splits

    config = {"data": str(TINY), "image": {"resize": 40, "crop": 32}, "training": {"test_subset": 6}}
    for split in ("train", "val"):  # the tensor cache, as the data check makes it
        images.load_cached(TINY, split, 40, 32, tmp_path)
    _, test, classes = load_splits("resnet18", config, tmp_path)
    assert len(test) == 6 and torch.bincount(test.labels, minlength=classes).tolist() == [2, 2, 2]
