"""ResNet18's data and model: the tiny ImageFolder shipped in the repo prepared into shards
(exact pixels of the notebook's pipeline, changed images, corrupt files), streamed batches whose
memory does not grow with the data set, and training that really trains (or not, at epochs=0)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, train_one
from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data import batches, mnist, prepare, shards
from normsweep.data.mnist import DataError
from normsweep.models.build import Classifier
from normsweep.training import engine
from normsweep.training.members.separate import Separate
from normsweep.training.runner import load_splits

TINY = ROOT / "data" / "imagenette-tiny"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The tiny folder prepared at 40 -> 32 px in shards of 7 images (train 30: 5 shards, val 12: 2)."""
    folder = tmp_path_factory.mktemp("prepared")
    prepare.prepare_folder(TINY, folder, 40, 32, shard_size=7)
    return folder


def imports_torch(call: str) -> bool:
    """Whether ``prepare.<call>`` imports torch, in a fresh interpreter."""
    code = f"import sys; from normsweep.data import prepare; {call}; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip() == "True"


def notebook_pixels(split, resize=40, crop=32):
    """The notebook's pipeline: ImageFolder, Resize, CenterCrop, ToTensor (float in [0, 1])."""
    from torchvision import datasets, transforms

    pipeline = transforms.Compose(
        [transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor()]
    )
    folder = datasets.ImageFolder(str(TINY / split), pipeline)
    return torch.stack([folder[i][0] for i in range(len(folder))]), [label for _, label in folder.samples]


def test_prepared_shards_are_the_notebook_pipelines_exact_pixels_in_any_order(prepared):
    record = json.loads((prepared / "files.json").read_text())
    assert record["val"]["shards"] == ["shards/val-00000.json", "shards/val-00001.json"]
    assert len(record["train"]["shards"]) == 5 and record["train"]["classes"] == [
        "n01440764",
        "n02102040",
        "n02979186",
    ]
    manifest = json.loads((prepared / "shards/val-00001.json").read_text())
    assert manifest["shape"] == [5, 3, 32, 32] and manifest["transform"]["resize"] == 40
    assert manifest["sha256"] == hashlib.sha256((prepared / "shards/val-00001.npy").read_bytes()).hexdigest()
    assert np.load(prepared / "shards/val-00001.npy").shape == (5, 3, 32, 32)  # a plain .npy file
    theirs, labels = notebook_pixels("val")
    split = batches.Streamed(shards.ShardedSplit.open(prepared, "val"))
    ours, our_labels = next(split.batches(None, 100))
    assert torch.equal(ours, theirs) and our_labels.tolist() == labels  # bit-exact, across two shards
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    shuffled = list(split.batches(order, 5, start=1))  # from the second batch on (a resume)
    assert [len(y) for _, y in shuffled] == [5, 2]
    assert torch.equal(torch.cat([x for x, _ in shuffled]), theirs[order[5:]])


def test_resize_and_crop_are_torchvisions_pixel_for_pixel_with_pil_alone():
    """A shard job resizes and crops with PIL alone (no torch to import): the pixels of
    torchvision's Resize + CenterCrop, for every interpolation the config offers, for
    landscape, portrait, square and odd sizes, an image already at the size, and crops larger
    than the image (CenterCrop's black border)."""
    from torchvision import transforms

    rng = np.random.default_rng(0)
    path = next((TINY / "val").rglob("*.JPEG"))
    photo = prepare.Image.open(path).convert("RGB")
    images = [photo, photo.transpose(prepare.Image.Transpose.ROTATE_90)] + [
        prepare.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((37, 53), (53, 37), (40, 40), (33, 61), (13, 9))
    ]
    sizes = [(40, 32), (48, 40), (40, 40), (37, 33), (16, 24), (9, 13)]
    for mode in prepare.PIL_FILTERS:
        theirs = transforms.InterpolationMode(mode)
        for resize, crop in sizes:
            pipeline = transforms.Compose(
                [transforms.Resize(resize, interpolation=theirs), transforms.CenterCrop(crop)]
            )
            for image in images:
                ours = np.asarray(prepare.resize_crop(image, resize, crop, mode))
                expected = np.asarray(pipeline(image))
                assert ours.shape == expected.shape == (crop, crop, 3), (mode, resize, crop, image.size)
                assert np.array_equal(ours, expected), (mode, resize, crop, image.size)
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        prepare.resize_crop(photo, 40, 32, "cubic")
    assert not imports_torch(f"prepare.decode_image({str(path)!r}, 40, 32)")  # a shard job imports none


def test_a_changed_image_changes_only_its_shard_and_bad_files_are_named(tmp_path):
    root = tmp_path / "folder"
    shutil.copytree(TINY, root)
    before = prepare.list_folder(root, shard_size=7)
    victim = root / "val" / before["val"]["files"][8]  # in the second val shard
    shutil.copy(root / "val" / before["val"]["files"][0], victim)  # another photo, same name
    os.utime(victim, ns=(1, 1))
    after = prepare.list_folder(root, shard_size=7)
    assert [s["signature"] for s in after["train"]["shards"]] == [
        s["signature"] for s in before["train"]["shards"]
    ]
    signatures = [
        (a["signature"] == b["signature"])
        for a, b in zip(before["val"]["shards"], after["val"]["shards"], strict=True)
    ]
    assert signatures == [True, False]
    victim.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=victim.name + ": not a readable image"):
        prepare.prepare_shard(root, after, "val", 1, 40, 32, tmp_path / "out.npy")
    empty = tmp_path / "empty"
    (empty / "train" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=str(empty / "train")):
        prepare.list_split(empty, "train")
    with pytest.raises(DataError, match="no such folder"):
        prepare.list_folder(tmp_path / "nowhere")


def test_a_truncated_or_missing_shard_names_its_file(prepared, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    pixels = copy / "shards/val-00001.npy"
    pixels.write_bytes(pixels.read_bytes()[:-100])
    split = shards.ShardedSplit.open(copy, "val")
    with pytest.raises(DataError, match=r"val-00001\.npy: truncated"):
        split.read(np.arange(12))
    pixels.unlink()
    with pytest.raises(DataError, match=r"val-00001\.npy: a prepared shard is missing"):
        shards.ShardedSplit.open(copy, "val").read(np.arange(12))


def test_statistics_summed_from_shard_histograms_are_exact(prepared):
    manifests = [json.loads((prepared / name).read_text()) for name in json.loads(
        (prepared / "files.json").read_text())["train"]["shards"]]  # fmt: skip
    mean, std, n_images, n_pixels = prepare.histogram_stats(manifests)
    every = shards.ShardedSplit.open(prepared, "train").read(np.arange(30))
    exact = mnist.exact_stats(torch.from_numpy(every), channel_dim=1)
    assert (n_images, n_pixels) == (30, 30 * 32 * 32)
    assert np.allclose(mean, exact.mean, rtol=0, atol=1e-12) and np.allclose(
        std, exact.std, rtol=0, atol=1e-12
    )


def synthetic_split(folder, n, size=32):
    """A prepared split of ``n`` random images (no decoding), as prepare_shard writes one."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    header = prepare._npy_header((n, 3, size, size))
    with open(folder / "x.npy", "wb") as handle:
        handle.write(header)
        for lo in range(0, n, 1000):
            handle.write(rng.integers(0, 256, (min(1000, n - lo), 3, size, size), dtype=np.uint8).tobytes())
    manifest = {"pixels": "x.npy", "shape": [n, 3, size, size], "header_bytes": len(header),
                "labels": [i % 10 for i in range(n)], "files": [f"{i}.jpg" for i in range(n)]}  # fmt: skip
    return shards.ShardedSplit(folder, [manifest], [str(c) for c in range(10)])


PEAK = """
import resource, sys, torch
sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
from test_images import synthetic_split
from pathlib import Path
from normsweep.data import batches
from normsweep.training import engine
from normsweep.training.members.separate import Separate
from normsweep.core.spec import CellSpec, TrainConfig
torch.set_num_threads(1)
split = batches.Streamed(synthetic_split(Path({folder!r}), {n}), prefetch=2)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10),
                          torch.nn.LogSoftmax(dim=1))
net(torch.zeros(1, 3, 32, 32))
spec = CellSpec("net", "imagefolder", "0.5", "0.25", [0.5], [0.25], 0, arch="custom")
members = Separate([spec], net, TrainConfig(lr=0.01), torch.device("cpu"), 3)
engine._train_epoch(members, split, 64, torch.Generator().manual_seed(0), {{0: 0.01}}, None, lambda *at: None, None)
members.evaluate(split, 256)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_streamed_epoch_takes_the_same_memory_for_ten_times_the_images(tmp_path):
    """Memory bounded by the batch, not the data set. 20,000 images of 32 px are 61 MB
    as uint8 and 246 MB as float32 (what the cells held before); an epoch over them and an
    evaluation peak within 20 MB of the same over 2,000 (measured: 0-4 MB)."""
    peaks = {}
    for n in (2000, 20000):
        code = PEAK.format(
            src=str(ROOT / "src"), tests=str(ROOT / "tests"), folder=str(tmp_path / str(n)), n=n
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        peaks[n] = int(run.stdout.split()[-1])
    assert peaks[20000] - peaks[2000] < 20, peaks


def test_resnet18_replaces_its_last_layer_and_checks_weights(tmp_path):
    net = Classifier("resnet18", 3)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(Classifier("resnet18", 1000).net.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    loaded = Classifier("resnet18", 3, weights=str(weights), weights_sha256=digest[:16])
    reference = torch.load(weights, weights_only=True)
    assert torch.equal(loaded.net.conv1.weight, reference["conv1.weight"])
    with pytest.raises(ValueError, match="sha256"):
        Classifier("resnet18", 3, weights=str(weights), weights_sha256="0" * 16)
    with pytest.raises(ValueError, match="no such weights file"):
        Classifier("resnet18", 1000, weights=str(tmp_path / "missing.pth"))


def small_split():
    pixels, labels = notebook_pixels("train")
    return batches.TensorData(pixels[:8], torch.tensor(labels[:8]))


def test_one_training_step_changes_the_weights_and_evaluation_does_not():
    data = small_split()
    torch.manual_seed(0)
    net = Classifier("resnet18", 3)
    before = [p.detach().clone() for p in net.parameters()]
    spec = CellSpec("resnet18", "imagefolder", "none", "none", None, None, 0, num_classes=3)
    members = Separate([spec], net, TrainConfig(lr=0.01), torch.device("cpu"), 3)
    members.evaluate(data, 8)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    generator = torch.Generator().manual_seed(0)
    engine._train_epoch(members, data, 8, generator, {0: 0.01}, None, lambda *at: None, None)  # one step
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_epochs_zero_is_evaluation_only(monkeypatch):
    data = small_split()
    monkeypatch.setattr(engine, "_train_epoch", lambda *a, **k: pytest.fail("trained at epochs=0"))
    spec = CellSpec(
        "resnet18",
        "imagefolder",
        "imagenet",
        "imagenet",
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
        1,
        num_classes=3,
    )
    result = train_one(spec, data, data, TrainConfig(epochs=0, lr=0.01, threads=1))
    assert [e.epoch for e in result.epochs] == [0] and 0 <= result.final_accuracy <= 1


def test_a_subset_of_an_image_folder_is_a_stratified_seeded_sample():
    """An ImageFolder lists class by class, so the first N images were one
    class; the sample has every class in proportion, the same indices for every cell."""
    labels = torch.tensor([0] * 100 + [1] * 100 + [2] * 50 + [3] * 5)  # in class order, as listed
    sample = shards.stratified_sample(labels, 51, seed=0)
    counts = torch.bincount(labels[sample], minlength=4).tolist()
    assert sum(counts) == 51 and counts == [20, 20, 10, 1]  # each class its share
    assert torch.equal(sample, shards.stratified_sample(labels, 51, seed=0))  # the same for every cell
    assert not torch.equal(sample, shards.stratified_sample(labels, 51, seed=1))
    assert torch.equal(sample, torch.sort(sample).values) and len(set(sample.tolist())) == 51
    tiny = torch.bincount(labels[shards.stratified_sample(labels, 4, seed=0)], minlength=4).tolist()
    assert tiny == [1, 1, 1, 1]  # every class while n allows, even the small one
    assert shards.stratified_sample(labels, None) is None and shards.stratified_sample(labels, 255) is None
    assert torch.bincount(labels[:51], minlength=4).tolist() == [51, 0, 0, 0]  # what the first N was


def test_a_cell_on_an_image_subset_sees_every_class_and_reads_only_its_sample(prepared, monkeypatch):
    config = {"data": str(TINY), "image": {"resize": 40, "crop": 32}, "training": {"test_subset": 6}}
    _, test, classes = load_splits("resnet18", config, prepared)
    assert len(test) == 6 and torch.bincount(test.labels, minlength=classes).tolist() == [2, 2, 2]
    read = []
    original = shards.ShardedSplit.read
    monkeypatch.setattr(
        shards.ShardedSplit,
        "read",
        lambda self, ix, out=None: read.extend(ix.tolist()) or original(self, ix, out),
    )
    _, labels = next(test.batches(None, 100))
    assert sorted(read) == test.index.tolist() and labels.tolist() == [0, 0, 1, 1, 2, 2]
    again = load_splits("resnet18", config, prepared)[1]
    assert torch.equal(again.index, test.index)  # every cell: the same sample
    from normsweep.training.runner import cell_spec  # recorded in each result (CellResult.data)

    recorded = cell_spec("resnet18", "0.5", "0.25", 1998, config, None, classes).data_key
    assert recorded.endswith("train None, test 6 (class-stratified samples, seed 0)"), recorded


def test_a_stratified_sample_has_exactly_n_images_whatever_the_class_sizes():
    """A class raised to its minimum of one kept its remainder and won an extra image
    it did not have: class sizes [1, 3, 3, 3] with n = 5 drew 4 images, silently. Property:
    over random class sizes and every n below the split's size, exactly n images, no class
    over its size, every class present when n allows."""
    labels = torch.tensor([0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert len(shards.stratified_sample(labels, 5)) == 5
    rng = np.random.default_rng(28)
    for case in range(300):
        sizes = rng.integers(1, 20, rng.integers(1, 10))
        labels = torch.tensor(np.repeat(np.arange(len(sizes)), sizes))
        for n in {1, len(sizes), int(rng.integers(1, sizes.sum() + 1)), int(sizes.sum()) - 1} - {0}:
            picked = shards.stratified_sample(labels, n, seed=case)
            if n >= sizes.sum():
                continue
            counts = torch.bincount(labels[picked], minlength=len(sizes))
            assert len(picked) == n, (sizes.tolist(), n)
            assert (counts <= torch.tensor(sizes)).all() and len(set(picked.tolist())) == n
            if n >= len(sizes):
                assert (counts >= 1).all(), (sizes.tolist(), n)


def test_the_listing_is_imagefolders_without_torch(tmp_path):
    """The lister (torch-free, for the login node) gives ImageFolder's classes, files and order:
    nested folders, upper-case endings, files that are no image, a linked class folder."""
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from normsweep.data.classes import folder_classes

    assert prepare.IMG_EXTENSIONS == IMG_EXTENSIONS
    root = tmp_path / "photos"
    photo = next((TINY / "train").rglob("*.JPEG")).read_bytes()
    for name in ("b/x.JPEG", "b/deep/a.png", "b/deep/z.txt", "a/Z.jpg", "a/y.webp", "a/notes.md", "c/1.bmp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(photo)
    (root / "linked").symlink_to(root / "c", target_is_directory=True)
    (root / "stray.jpg").write_bytes(photo)  # a file beside the class folders is no class
    (root / ".hidden").mkdir()  # a class to ImageFolder: to the weights' class index too
    (root / ".hidden/h.png").write_bytes(photo)
    reference = ImageFolder(str(root))
    assert prepare._class_samples(root) == (reference.classes, reference.samples)
    assert folder_classes(tmp_path, "photos") == reference.classes == [".hidden", "a", "b", "c", "linked"]
    assert prepare.list_split(tmp_path, "photos")["files"] == [
        os.path.relpath(path, root) for path, _ in reference.samples
    ]
    (root / "d").mkdir()  # a class folder without images: ImageFolder refuses it too
    with pytest.raises(FileNotFoundError):
        ImageFolder(str(root))
    with pytest.raises(DataError, match=r"class folders d\. Put each class's images"):
        prepare.list_split(tmp_path, "photos")
    assert not imports_torch(f"prepare.list_folder({str(TINY)!r}, 16)")  # a listing job imports none
