"""How a cell computes on its device (channels_last, cuDNN's benchmark, torch.compile)
and how batches reach it (uint8 to the device, float there). Each is tested here on the CPU,
the same code path a GPU takes; none changes what a cell computes."""

import pytest
import torch

from conftest import SMALL_MNIST, train_one
from normsweep.core.spec import CellSpec, TrainConfig, fingerprint
from normsweep.data import batches, mnist
from normsweep.study.config import validate_config
from normsweep.study.resources import SWITCHES, cell_params, switch_resources, with_execution
from normsweep.training.devices import Execution
from normsweep.training.runner import train_cells, train_config


@pytest.fixture(scope="module")
def tiny():
    tr = mnist.load_mnist(SMALL_MNIST, train=True, limit=192)
    te = mnist.load_mnist(SMALL_MNIST, train=False, limit=100)
    return batches.TensorData.from_uint8(tr.images, tr.labels), batches.TensorData.from_uint8(
        te.images, te.labels
    )


def spec(mean=(0.1307,), std=(0.3081,), checkpoint=None):
    return CellSpec("lenet", "mnist", "m", "s", list(mean), list(std), 1998, checkpoint)


def test_the_switches_resolve_per_device_and_refuse_what_contradicts():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert Execution.resolve(cpu, False) == Execution(False, False, False)
    assert Execution.resolve(cpu, False, precision="bf16") == Execution(False, False, False)
    assert Execution.resolve(cuda, False) == Execution(channels_last=False, cudnn_benchmark=True)  # fp32
    assert Execution.resolve(cuda, False, precision="bf16") == Execution(
        channels_last=True, cudnn_benchmark=True
    )
    assert Execution.resolve(cuda, True, precision="tf32") == Execution(
        channels_last=True, cudnn_benchmark=False
    )
    assert Execution.resolve(cuda, False, "false", "False", "true") == Execution(False, False, True)
    with pytest.raises(ValueError, match="training.cudnn_benchmark: true with training.deterministic"):
        Execution.resolve(cpu, True, cudnn_benchmark=True)
    with pytest.raises(ValueError, match="training.channels_last: 'sometimes'"):
        Execution.resolve(cpu, False, channels_last="sometimes")


def test_the_switches_are_how_a_cell_runs_not_what_it_is():
    """They reach a job as resources (strings), back as training keys; none is in a cell's
    params (no rerun) or in a checkpoint's fingerprint (a checkpoint resumes across them)."""
    block = validate_config({"models": {"lenet": {"data": str(SMALL_MNIST), "references": {"none": "none"}}}})
    training = block["models"]["lenet"]["training"]
    assert {k: training[k] for k in SWITCHES} == {
        "channels_last": "auto",
        "cudnn_benchmark": "auto",
        "compile": False,
    }
    assert not set(SWITCHES) & set(cell_params(block["models"]["lenet"])["training"])
    training.update(channels_last=True, compile=True)
    resources = switch_resources(training)
    assert resources == {"channels_last": "true", "cudnn_benchmark": "auto", "compile": "true"}
    job = with_execution({"training": {"epochs": 1}}, 1, "cpu", 0, resources)
    config = train_config("lenet", job["training"])
    assert (config.channels_last, config.cudnn_benchmark, config.compile) == ("true", "auto", "true")
    assert fingerprint(spec(), config) == fingerprint(spec(), TrainConfig(epochs=1))
    with pytest.raises(Exception, match="channels_last"):
        validate_config(
            {"models": {"lenet": {"data": str(SMALL_MNIST), "training": {"channels_last": "yes"}}}}
        )


def test_uint8_pixels_become_float_on_the_device_batch_by_batch(tiny):
    tr, _ = tiny
    assert tr.images.dtype == torch.uint8  # a quarter of float32's bytes, on the device too
    order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))
    x, y = next(tr.batches(order, 64))
    assert x.dtype == torch.float32 and torch.equal(x, tr.images[order[:64]].float() / 255)
    assert torch.equal(y, tr.labels[order[:64]])
    x_nhwc, _ = next(tr.to(torch.device("cpu"), channels_last=True).batches(order, 64))
    assert x_nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(x_nhwc, x)
    copied = list(batches.ahead(iter([(tr.images[:3], tr.labels[:3])]), torch.device("cpu"), True))
    assert len(copied) == 1 and torch.equal(copied[0][0], tr.images[:3].float() / 255)


def test_channels_last_trains_and_evaluates_to_the_same_outputs(tiny):
    """NHWC on the CPU: an evaluation gives the NCHW predictions and losses; training runs and
    records it (LeNet's dropout on its pooled maps draws its masks in memory order, so its
    training numbers are another draw, not the NCHW run's)."""
    tr, te = tiny
    nhwc = train_one(spec(), tr, te, TrainConfig(epochs=1, threads=1, channels_last=True))
    assert nhwc.execution == {"channels_last": True, "cudnn_benchmark": False, "compile": False}
    assert nhwc.status == "ok" and nhwc.final_accuracy > 0.1
    both = [spec(), spec((0.0,), (1.0,))]
    plain, nhwc = (train_cells(both, tr, te, TrainConfig(epochs=0, channels_last=c)) for c in (False, True))
    assert plain[0].execution["channels_last"] is False and nhwc[0].execution["channels_last"] is True
    for a, b in zip(plain, nhwc, strict=True):
        assert (a.predictions == b.predictions).all()
        assert b.epochs[0].test_loss == pytest.approx(a.epochs[0].test_loss, rel=1e-5)


def test_a_compiled_step_draws_the_uncompiled_numbers_and_saves_plain_weights(tiny, tmp_path):
    """torch.compile on the CPU (inductor, a C++ compiler): dropout draws from torch's generator
    (fallback_random), so two epochs end where the uncompiled ones do (the same accuracies, the
    losses to float rounding); the checkpoint holds the network's own keys, so it resumes
    compiled or not."""
    tr, te = tiny
    config = TrainConfig(epochs=2, threads=1, deterministic=True)
    plain = train_one(spec(), tr, te, config)
    config.compile = True
    compiled = train_one(spec(checkpoint=tmp_path / "cell.pt"), tr, te, config)
    assert compiled.execution["compile"] is True
    assert [e.test_accuracy for e in compiled.epochs] == [e.test_accuracy for e in plain.epochs]
    # inductor's fused kernels add in another order, whose vector width is the CPU's (AVX2 or
    # AVX-512): measured apart by 8e-5 relative on an AVX2 EPYC, 1e-6 on an AVX-512 machine
    for ours, theirs in zip(compiled.epochs, plain.epochs, strict=True):
        assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-3)
    saved = torch.load(tmp_path / "cell.pt", weights_only=True)
    assert not any("_orig_mod" in key for key in saved["kind"]["nets"][0])
