"""Each output keyed on what made it (issue 35): the generators of the devices present, the
determinism switch, the last training batch, labels and data versions, tables of the
configured cells, one plan of packs."""

import torch

from normsweep import checkpoint


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

    from normsweep.devices import nondeterministic_ops, set_determinism
    from normsweep.models import build_model

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
    from normsweep import batches, data, images
    from normsweep.runner import load_splits
    from normsweep.spec import CellSpec, TrainConfig

    images.prepare_folder(ROOT / "data" / "imagenette-tiny", tmp_path, 40, 32, shard_size=16)
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
    mnist = data.load_mnist(SMALL_MNIST, train=True, limit=5)
    small = batches.TensorData.from_uint8(mnist.images, mnist.labels)
    lenet = train_one(CellSpec("lenet", "mnist", "m", "s", None, None, 1998), small, small, config)
    assert lenet.train_left_out == 0 and lenet.status == "ok"
