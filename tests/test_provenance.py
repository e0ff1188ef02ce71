"""Each output keyed on what made it: the generators of the devices present, the
determinism switch, the last training batch, labels and data versions, tables of the
configured cells, one plan of packs."""

import pytest
import torch

from normsweep.training import checkpoint


def test_a_checkpoint_of_two_gpus_resumes_on_one(monkeypatch):
    """Saved with two visible GPUs, resumed with one: the present device's generator is
    restored, the absent one's left aside (set_rng_state_all raised for device 1)."""
    restored = []

    def set_rng_state(state, device="cuda"):
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= 1:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        restored.append((index, state.clone()))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_rng_state)
    shuffle = torch.Generator().manual_seed(3)
    gpu0, gpu1 = torch.full((16,), 1, dtype=torch.uint8), torch.full((16,), 2, dtype=torch.uint8)
    state = {"shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(), "cuda_rng": [gpu0, gpu1]}
    checkpoint.restore_rng(state, shuffle)
    assert [i for i, _ in restored] == [0] and torch.equal(restored[0][1], gpu0)
    assert checkpoint.present_generators([gpu0, gpu1], 0) == []
    assert [i for i, _ in checkpoint.present_generators([gpu0], 4)] == [0]


def test_deterministic_warns_instead_of_failing_and_names_the_operations():
    """PyTorch documents AdaptiveAvgPool2d's CUDA backward (VGG, AlexNet) as having no
    deterministic kernel: use_deterministic_algorithms(True) raised there at the first
    backward. Now it warns, and the run names those operations (a 1 x 1 output is a mean)."""
    from torchvision import models

    from normsweep.models.build import build_model
    from normsweep.training.devices import nondeterministic_ops, set_determinism

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        set_determinism(0, True)
        assert (
            torch.are_deterministic_algorithms_enabled()
            and torch.is_deterministic_algorithms_warn_only_enabled()
        )
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    vgg = nondeterministic_ops(models.vgg11())
    assert vgg == ["avgpool: AdaptiveAvgPool2d(output_size=(7, 7)) backward"]
    assert nondeterministic_ops(models.alexnet()) == [
        "avgpool: AdaptiveAvgPool2d(output_size=(6, 6)) backward"
    ]
    assert nondeterministic_ops(models.resnet18()) == []  # AdaptiveAvgPool2d((1, 1)): a mean
    assert nondeterministic_ops(build_model("lenet", 10)) == []
    odd = torch.nn.Sequential(torch.nn.ReflectionPad2d(1), torch.nn.Upsample(scale_factor=2, mode="bilinear"),
                              torch.nn.Upsample(scale_factor=2, mode="nearest"), torch.nn.MaxPool3d(2))  # fmt: skip
    assert [op.split(":")[0] for op in nondeterministic_ops(odd)] == ["0", "1", "3"]


def test_a_last_training_batch_of_one_image_never_fails_batch_norm(tmp_path):
    """ResNet18 with train_subset 5 and batch_size 4 failed at the end of its first epoch
    ("Expected more than 1 value per channel when training"); now that image sits out each
    epoch, recorded in the result. LeNet (no batch norm) keeps its last batch of one."""
    from conftest import ROOT, SMALL_MNIST, train_one
    from normsweep.core.spec import CellSpec, TrainConfig
    from normsweep.data import batches, mnist, prepare
    from normsweep.training.runner import load_splits

    prepare.prepare_folder(ROOT / "data" / "imagenette-tiny", tmp_path, 40, 32, shard_size=16)
    train, test, classes = load_splits(
        "resnet18",
        {"data": str(ROOT / "data" / "imagenette-tiny"), "training": {"train_subset": 5}},
        tmp_path,
    )
    config = TrainConfig(epochs=1, batch_size=4, test_batch_size=8, lr=0.01, threads=1, device="cpu")
    spec = CellSpec("resnet18", "imagefolder", "m", "s", None, None, 1998, num_classes=classes)
    result = train_one(spec, train, test, config)
    assert result.status == "ok" and result.n_train == 5 and result.train_left_out == 1
    assert result.to_dict()["train_left_out"] == 1
    mnist = mnist.load_mnist(SMALL_MNIST, train=True, limit=5)
    small = batches.TensorData.from_uint8(mnist.images, mnist.labels)
    lenet = train_one(CellSpec("lenet", "mnist", "m", "s", None, None, 1998), small, small, config)
    assert lenet.train_left_out == 0 and lenet.status == "ok"


def _folder(root, train, val=None):
    """An ImageFolder of one 8 x 8 PNG per class (classes: wnids) in train/ and val/."""
    from PIL import Image

    for split, wnids in (("train", train), ("val", val or train)):
        for i, wnid in enumerate(wnids):
            path = root / split / wnid / f"{wnid}-{split}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(path)


def _study(root, cache, folder, splits=("train", "val")):
    """What the workflow's data jobs do for one study: list, provide each shard from the shared
    cache, record; the val split as a cell opens it."""
    import json

    from normsweep.core.results import write_json_atomic
    from normsweep.data import cache as ns_cache
    from normsweep.data import prepare, shards

    folder.mkdir(parents=True, exist_ok=True)
    image = {"resize": 8, "crop": 8, "shard_size": 4}
    listing = prepare.list_folder(root, 4, splits)
    (folder / "listing.json").write_text(json.dumps(listing))
    manifests, how = {}, []
    for split in prepare.listed_splits(listing):
        for index, shard in enumerate(listing[split]["shards"]):
            pixels, manifest = ns_cache.cache_paths(cache, "key", split, index, shard["signature"])
            how.append(ns_cache.provide_shard([folder / "listing.json"], split, index, shard["signature"], image,
                                              pixels, manifest)[1])  # fmt: skip
            manifests.setdefault(split, []).append(str(manifest))
    write_json_atomic(folder / "files.json", prepare.data_record(root, image, listing, manifests))
    val = shards.ShardedSplit.open(folder, "val")
    return val.labels.tolist(), val.classes, how


def test_a_class_added_to_train_renumbers_a_reused_val_shard(tmp_path):
    """The val shard is prepared with 2 classes; a third (sorting first) is added to train/
    only: the next listing numbers val [1, 2], and the reused shard must not bring [0, 1]."""
    _folder(tmp_path / "d", ["n02", "n03"])
    assert _study(tmp_path / "d", tmp_path / "cache", tmp_path / "a")[:2] == ([0, 1], ["n02", "n03"])
    _folder(tmp_path / "d", ["n01", "n02", "n03"], ["n02", "n03"])
    labels, classes, how = _study(tmp_path / "d", tmp_path / "cache", tmp_path / "b")
    assert labels == [1, 2] and classes == ["n01", "n02", "n03"]
    assert "reused" in how  # the val pixels are shared, their labels are not


@pytest.mark.parametrize("first", ["evaluation", "training"])
def test_two_studies_of_one_folder_share_a_cache_in_either_order(tmp_path, first):
    """An evaluation-only study (val/ alone: its own numbering) and a training study (val/ as
    train/ numbers it) share `data_cache`: each gets its own labels, in either order."""
    _folder(tmp_path / "d", ["n01", "n02", "n03"], ["n02", "n03"])
    cache = tmp_path / "cache"
    runs = {
        "evaluation": lambda: _study(tmp_path / "d", cache, tmp_path / "eval", ("val",)),
        "training": lambda: _study(tmp_path / "d", cache, tmp_path / "train"),
    }
    order = [first, *(k for k in runs if k != first)]
    got = {name: runs[name]() for name in order}
    assert got["evaluation"][:2] == ([0, 1], ["n02", "n03"])
    assert got["training"][:2] == ([1, 2], ["n01", "n02", "n03"])
    assert "reused" in got[order[1]][2]


def test_a_data_version_is_of_the_content_and_names_cells_of_another(tmp_path):
    """The version follows labels, classes, shards and MNIST's sums, not the path; results
    older than the record and of another version are named, others never read."""
    import json
    import os

    from normsweep.core import provenance

    record = {"root": "/a", "val": {"classes": ["x", "y"], "labels": [[0, 3]], "signatures": ["s1"]}}
    same = provenance.content_version({**record, "root": "/elsewhere"})
    assert provenance.content_version(record) == same
    relabeled = {**record, "val": {**record["val"], "labels": [[1, 3]]}}
    assert provenance.content_version(relabeled) != same
    assert provenance.content_version({"md5": {"a": "1"}}) != provenance.content_version({"md5": {"a": "2"}})
    files = tmp_path / "files.json"
    old, new, unrecorded = (tmp_path / f"{n}.json" for n in ("old", "new", "unrecorded"))
    old.write_text(json.dumps({"data_version": "v1"}))
    unrecorded.write_text(json.dumps({}))
    files.write_text(json.dumps({**record, "version": "v2"}))
    new.write_text(json.dumps({"data_version": "v1"}))  # written after the record: not read
    for path, when in ((old, 1), (unrecorded, 1), (files, 2), (new, 3)):
        os.utime(path, ns=(when * 10**9, when * 10**9))
    results = [old, new, unrecorded, tmp_path / "missing.json"]
    assert provenance.stale_cells(results, files) == {str(old): "v1"}
    assert "1 finished cells ran on data version v1" in provenance.describe_stale("m", {str(old): "v1"}, "v2")
    raw = provenance.mnist_raw_folder(tmp_path)
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"12")
    before = provenance.mnist_stamp(tmp_path)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"123")  # replaced in place
    assert provenance.mnist_stamp(tmp_path) != before
