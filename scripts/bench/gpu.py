"""The GPU path measured in one run: training, evaluation, data and correctness, side by side
with the protocols users would otherwise run. Needs only torch, torchvision and numpy, so it
runs on a bare GPU node from a checkout:

    PYTHONPATH=src python3 scripts/bench/gpu.py --out docs/benchmarks/<gpu>   # at most 8 minutes
    PYTHONPATH=src python3 scripts/bench/gpu.py --quick --out /tmp/bench      # CPU, toy sizes (the tests)

Writes bench_gpu.json (every number) and bench_gpu.md (the tables) to --out.

1. Training, LeNet on MNIST-shaped data (random pixels and labels: the speed does not depend on
   them), per precision (fp32, tf32, bf16): the notebook's protocol (one network; a DataLoader
   whose dataset makes a PIL image per sample and applies ToTensor and Normalize, as
   torchvision's MNIST does; 1 worker, pinned memory, as the PyTorch MNIST example) against one
   normsweep cell and packs of K cells (stacked under vmap). Rates are cell-epochs per second,
   a cell-epoch being 60,000 training and 10,000 test images; each run covers ``--train-images``
   of them (and a sixth as many test images) after a warm-up. From each rate: the GPU-hours of
   the notebook's study (225 cells x 30 epochs), a projection from the measured rate.
2. Evaluation at ``--image-size`` px: ResNet-18 and ResNet-50 (random weights, 1000 classes):
   plain ``model(x)`` on device-resident batches (the timm benchmark's protocol) against
   normsweep's evaluation pack of K normalizations, in images per second per cell, with and
   without channels_last, fp32 and bf16.
3. Data: a prepared shard (read once first, so from the page cache) streamed to the device
   by normsweep's reader, images per second.
4. Correctness on the device: a stacked pack against one-cell runs over 2 epochs (the CPU
   tests' bound on step losses), evaluation-pack predictions against one-cell predictions
   (fp32), and a separate-network pack killed inside an epoch and resumed against the
   uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data import batches, shards
from normsweep.models.lenet import LeNet
from normsweep.training import engine
from normsweep.training.devices import device_name, pick_device, set_precision
from normsweep.training.engine import run
from normsweep.training.members.eval_only import Evaluation
from normsweep.training.members.separate import Separate
from normsweep.training.runner import train_cells

MEAN, STD = 0.1307, 0.3081
EPOCH_TRAIN, EPOCH_TEST = 60_000, 10_000  # one cell-epoch of the notebook's MNIST
STUDY_CELL_EPOCHS = 225 * 30  # the notebook's 15 x 15 grid, 30 epochs each
PRECISIONS = ("fp32", "tf32", "bf16")

SIZES = {  # (GPU, at most 8 minutes on one card) and --quick (CPU, seconds)
    "full": {"train_images": 20_000, "warm_images": 640, "check_images": 640, "packs": [8, 32, 128], "image_size": 224, "eval_images": 512,
             "eval_packs": [1, 8, 32], "models": ["resnet18", "resnet50"], "plain_batches": 20, "plain_batch": 256,
             "shard_images": 4096, "workers": 1},
    "quick": {"train_images": 64, "warm_images": 32, "check_images": 192, "packs": [2], "image_size": 32, "eval_images": 8,
              "eval_packs": [2], "models": ["resnet18"], "plain_batches": 1, "plain_batch": 16,
              "shard_images": 32, "workers": 0},
}  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object]) -> float:
    sync(device)
    tic = time.perf_counter()
    work()
    sync(device)
    return time.perf_counter() - tic


def mnist_shaped(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


def lenet(mean: float | None, std: float | None, seed: int = 1998) -> CellSpec:
    label = "none" if mean is None else f"{mean:g}"
    return CellSpec("lenet", "mnist", label, "none" if std is None else f"{std:g}",
                    None if mean is None else [mean], None if std is None else [std], seed)  # fmt: skip


def pack_of(k: int) -> list[CellSpec]:
    """K LeNet cells that differ in their normalization only."""
    return [lenet(MEAN + 0.01 * i, STD) for i in range(k)]


class NotebookMNIST(torch.utils.data.Dataset):
    """What torchvision's MNIST dataset does per sample: a PIL image, then the transform."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor):
        self.pixels, self.labels = pixels, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.pixels[i].numpy(), mode="L")), int(self.labels[i])


def notebook_epoch(train, test, device: torch.device, precision: str, workers: int) -> None:
    """One epoch of the PyTorch MNIST example: train, test, step the plateau."""
    torch.manual_seed(1998)
    kwargs = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    train_loader = torch.utils.data.DataLoader(NotebookMNIST(*train), batch_size=64, shuffle=True, **kwargs)
    test_loader = torch.utils.data.DataLoader(NotebookMNIST(*test), batch_size=1000, **kwargs)
    model = LeNet().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max")
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    model.train()
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        with cast:
            loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = torch.zeros((), device=device)
    with torch.no_grad(), cast:
        for x, y in test_loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(1) == y).sum()
    scheduler.step(float(correct) / len(test[1]))


def training(device: torch.device, size: dict) -> list[dict]:
    n = size["train_images"]
    fraction = n / EPOCH_TRAIN
    train = mnist_shaped(n, 0)
    test = mnist_shaped(max(1, round(EPOCH_TEST * fraction)), 1)
    data = batches.TensorData.from_uint8(*train), batches.TensorData.from_uint8(*test)
    w = size["warm_images"]
    warm = batches.TensorData.from_uint8(train[0][:w], train[1][:w]), data[1]
    rows = []
    for precision in PRECISIONS:
        set_precision(precision)
        notebook_epoch((train[0][:w], train[1][:w]), test, device, precision, size["workers"])  # warm-up
        seconds = timed(device, lambda p=precision: notebook_epoch(train, test, device, p, size["workers"]))
        rows.append({"precision": precision, "protocol": "notebook", "cells": 1, "seconds": seconds})
        for k in [1, *size["packs"]]:
            config = TrainConfig(epochs=1, device=str(device), precision=precision)
            train_cells(pack_of(k), *warm, config)  # warm-up: allocations, cuDNN's choices
            seconds = timed(device, lambda k=k, c=config: train_cells(pack_of(k), *data, c))
            rows.append({"precision": precision, "protocol": "normsweep cell" if k == 1 else f"pack of {k}",
                         "cells": k, "seconds": seconds})  # fmt: skip
    for row in rows:
        row["cell_epochs_per_s"] = row["cells"] * fraction / row["seconds"]
        row["study_gpu_hours"] = STUDY_CELL_EPOCHS / row["cell_epochs_per_s"] / 3600
    notebook = {r["precision"]: r["cell_epochs_per_s"] for r in rows if r["protocol"] == "notebook"}
    for row in rows:
        row["x_notebook"] = row["cell_epochs_per_s"] / notebook[row["precision"]]
    set_precision("fp32")
    return rows


def plain_forward(model: torch.nn.Module, device, size: dict, channels_last: bool, bf16: bool) -> float:
    """timm's benchmark protocol: ``model(x)`` on one device-resident batch (of 256 on a GPU),
    again and again."""
    x = torch.rand(size["plain_batch"], 3, size["image_size"], size["image_size"], device=device)
    if channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), cast:
        for _ in range(2):
            model(x)
        seconds = timed(device, lambda: [model(x) for _ in range(size["plain_batches"])])
    return size["plain_batch"] * size["plain_batches"] / seconds


def evaluation(device: torch.device, size: dict) -> list[dict]:
    import torchvision

    s, n = size["image_size"], size["eval_images"]
    g = torch.Generator().manual_seed(2)
    test = batches.TensorData(torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g),
                              torch.randint(0, 1000, (n,), generator=g))  # fmt: skip
    rows = []
    for arch in size["models"]:
        for channels_last in (False, True):
            for precision in ("fp32", "bf16"):
                torch.manual_seed(0)
                model = getattr(torchvision.models, arch)(weights=None).to(device).eval()
                plain = plain_forward(model, device, size, channels_last, precision == "bf16")
                base = {"model": arch, "channels_last": channels_last, "precision": precision}
                rows.append(
                    {**base, "protocol": "plain model(x)", "cells": 1, "images_per_s_per_cell": plain}
                )
                config = TrainConfig(epochs=0, test_batch_size=min(256, n), device=str(device),
                                     precision=precision, channels_last=channels_last)  # fmt: skip
                for k in size["eval_packs"]:
                    rows.append({**base, "protocol": f"eval pack of {k}", "cells": k,
                                 "images_per_s_per_cell": k * n / eval_pack(arch, k, test, config)})  # fmt: skip
    return rows


def eval_pack(arch: str, k: int, test: batches.TensorData, config: TrainConfig) -> float:
    """Seconds of the engine's evaluation of K normalizations (its Evaluation members, the
    network built and on the device first, as timm's protocol times the forward passes only)."""
    specs = [CellSpec(arch, "bench", f"m{i}", "s", [0.45 + 0.01 * i] * 3, [0.225] * 3, 0, num_classes=1000)
             for i in range(k)]  # fmt: skip
    device, execution, base = engine.start(specs, config)
    members = Evaluation(specs, base, config, device, 3, execution)
    data = test.to(device, execution.channels_last)
    members.evaluate(data, config.test_batch_size)  # warm-up: cuDNN's choices, allocations
    return timed(device, lambda: members.evaluate(data, config.test_batch_size))


def write_shard(folder: Path, n: int, s: int) -> shards.ShardedSplit:
    """A prepared split of ``n`` random images as normsweep's data jobs write one (a .npy shard)."""
    pixels = np.random.default_rng(3).integers(0, 256, (n, 3, s, s), dtype=np.uint8)
    np.save(folder / "val-00000.npy", pixels)
    offset = np.load(folder / "val-00000.npy", mmap_mode="r").offset
    manifest = {
        "shape": [n, 3, s, s],
        "header_bytes": int(offset),
        "pixels": "val-00000.npy",
        "labels": [0] * n,
    }
    return shards.ShardedSplit(folder, [manifest], ["c"])


def data_path(device: torch.device, size: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        split = write_shard(Path(tmp), size["shard_images"], size["image_size"])
        stream = batches.Streamed(split, device=device, prefetch=4)
        for _ in stream.batches(None, 256):  # read once: the page cache holds it now
            pass

        def read() -> None:
            for x, _y in stream.batches(None, 256):
                x.sum()  # the batch is used where it lands

        seconds = timed(device, read)
        split.close()
    return {"images": size["shard_images"], "image_size": size["image_size"],
            "images_per_s": size["shard_images"] / seconds}  # fmt: skip


class Killed(Exception):
    pass


def correctness(device: torch.device, size: dict) -> dict:
    """The pack, the evaluation pack and a resume, checked on ``device``."""
    out: dict = {}
    train = batches.TensorData.from_uint8(*mnist_shaped(size["check_images"], 4))
    test = batches.TensorData.from_uint8(*mnist_shaped(size["check_images"] // 3, 5))
    config = TrainConfig(epochs=2, lr=0.01, deterministic=True, device=str(device))
    steps: dict[int, list[float]] = {}

    def record(n, members, losses):
        for i, loss in zip(members, losses.tolist(), strict=True):
            steps.setdefault(i, []).append(loss)

    specs = pack_of(3)
    packed = train_cells(specs, train, test, config, on_step=record)  # stacked
    worst = 0.0
    for i, spec in enumerate(specs):
        alone: list[float] = []
        train_cells(
            [spec],
            train,
            test,
            config,
            on_step=lambda n, m, losses, alone=alone: alone.append(float(losses[0])),
        )
        worst = max(worst, max(abs(a - b) / abs(a) for a, b in zip(alone, steps[i], strict=True)))
    out["pack_vs_cells"] = {"max_relative_step_loss": worst, "bound": 1e-5, "ok": worst < 1e-5,
                            "pack_accuracies": [r.final_accuracy for r in packed]}  # fmt: skip
    out["eval_pack_vs_cells"] = eval_predictions(device)
    out["kill_and_resume"] = kill_and_resume(device, train, test)
    return out


def eval_predictions(device: torch.device) -> dict:
    g = torch.Generator().manual_seed(6)
    test = batches.TensorData(torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8, generator=g),
                              torch.randint(0, 10, (16,), generator=g))  # fmt: skip
    empty = batches.TensorData(
        torch.zeros(0, 3, 64, 64, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    )
    specs = [CellSpec("resnet18", "bench", f"m{i}", "s", [0.3 + 0.1 * i] * 3, [0.25] * 3, 0, num_classes=10)
             for i in range(3)]  # fmt: skip
    config = TrainConfig(epochs=0, test_batch_size=8, device=str(device), precision="fp32")
    packed = train_cells(specs, empty, test, config)
    differ = sum(int((r.predictions != train_cells([s], empty, test, config)[0].predictions).sum())
                 for s, r in zip(specs, packed, strict=True))  # fmt: skip
    return {"predictions_differing": differ, "of": 3 * 16, "ok": differ == 0}


def kill_and_resume(device: torch.device, train, test) -> dict:
    """Two separate LeNets (dropout draws on the device) killed after 2 batches, resumed."""
    config = TrainConfig(epochs=2, lr=0.01, deterministic=True, device=str(device), checkpoint_minutes=0)
    specs = pack_of(2)
    whole = run(Separate, specs, train, test, config)  # LeNets would stack: separate networks asked for

    def kill(n, *_):
        if n == 2:
            raise Killed

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "pack.pt"
        try:
            run(Separate, specs, train, test, config, checkpoint, on_step=kill)
        except Killed:
            pass
        resumed = run(Separate, specs, train, test, config, checkpoint)
    same = all([e.test_accuracy for e in a.epochs] == [e.test_accuracy for e in b.epochs]
               and abs(a.epochs[-1].train_loss - b.epochs[-1].train_loss) <= 1e-6 * abs(b.epochs[-1].train_loss)
               for a, b in zip(resumed, whole, strict=True))  # fmt: skip
    return {"resumed_equals_uninterrupted": same, "ok": same}


def markdown(report: dict) -> str:
    lines = [f"# scripts/bench/gpu.py on {report['device_name']}", "",
             f"torch {report['torch']}, {report['mode']} sizes, {report['seconds']:.0f} s in all. "
             "GPU-hours of the notebook's study (225 cells x 30 epochs) are projected from each measured rate.", "",
             "## Training: LeNet, MNIST-shaped", "",
             "| precision | protocol | cells | seconds | cell-epochs/s | x notebook | study GPU-hours |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["training"]:
        lines.append(f"| {r['precision']} | {r['protocol']} | {r['cells']} | {r['seconds']:.2f} | "
                     f"{r['cell_epochs_per_s']:.3f} | {r['x_notebook']:.1f} | {r['study_gpu_hours']:.2f} |")  # fmt: skip
    lines += ["", f"## Evaluation at {report['sizes']['image_size']} px", "",
              "| model | precision | channels_last | protocol | images/s per cell |", "|---|---|---|---|---:|"]  # fmt: skip
    for r in report["evaluation"]:
        lines.append(f"| {r['model']} | {r['precision']} | {r['channels_last']} | {r['protocol']} | "
                     f"{r['images_per_s_per_cell']:.0f} |")  # fmt: skip
    d = report["data"]
    lines += ["", "## Data", "", f"Prepared shard to the device ({d['images']} images at {d['image_size']} px, "
              f"page cache): {d['images_per_s']:.0f} images/s.", "", "## Correctness on the device", ""]  # fmt: skip
    for name, check in report["correctness"].items():
        detail = ", ".join(f"{k} {v}" for k, v in check.items() if k != "ok")
        lines.append(f"- {name}: {'ok' if check['ok'] else 'FAILED'} ({detail})")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_gpu.json and bench_gpu.md")
    parser.add_argument("--quick", action="store_true", help="toy sizes on the CPU (the test suite)")
    parser.add_argument("--device", default=None, help="default: cuda when there is one (cpu with --quick)")
    args = parser.parse_args()
    device = pick_device(args.device or ("cpu" if args.quick else "auto"))
    size = SIZES["quick" if args.quick else "full"]
    tic = time.perf_counter()
    report = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
              "mode": "quick" if args.quick else "full", "sizes": size}  # fmt: skip
    sections = {"correctness": correctness, "training": training, "evaluation": evaluation, "data": data_path}
    report["section_seconds"] = {}
    for name, section in sections.items():  # correctness first: a wrong path is not worth timing
        start = time.perf_counter()
        report[name] = section(device, size)
        report["section_seconds"][name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {report['section_seconds'][name]} s", flush=True)
    report["seconds"] = time.perf_counter() - tic
    stdlib = set(sys.stdlib_module_names)
    report["third_party_modules"] = sorted({m.split(".")[0] for m in sys.modules} - stdlib - {"__main__"})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "bench_gpu.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(c["ok"] for c in report["correctness"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
