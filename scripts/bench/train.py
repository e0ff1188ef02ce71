"""Time one epoch of normsweep's data path against the notebook's protocol, in one run.

    .venv/bin/python scripts/bench/train.py                 # full MNIST from ../shared/data
    .venv/bin/python scripts/bench/train.py --root data/mnist-small --limit 6000

The notebook's protocol: torchvision's MNIST dataset with ToTensor + Normalize applied per
sample (PIL), through a DataLoader (batch 64, shuffle, num_workers=1). Ours: the data set as
one tensor on the device, normalized once by a tensor operation, batches by indexing.

Two things are timed for each, on the same machine, in the same process:
- data path: one epoch of batches with no model (what the data loading costs);
- full epoch: the same with LeNet, Adadelta and the backward pass (what a cell costs).
Prints the seconds and the ratios (notebook / ours); --json writes them to a file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from normsweep.core.spec import CellSpec, TrainConfig  # noqa: E402
from normsweep.data import mnist  # noqa: E402
from normsweep.data.batches import TensorData  # noqa: E402
from normsweep.models.lenet import LeNet  # noqa: E402
from normsweep.models.normalize import normalize  # noqa: E402
from normsweep.training import engine  # noqa: E402
from normsweep.training.devices import pick_device  # noqa: E402
from normsweep.training.members.separate import Separate  # noqa: E402

MEAN, STD = 0.1307, 0.3081
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def torchvision_root(root: Path, work: Path) -> Path:
    """torchvision reads the uncompressed files: write them in a scratch copy of the layout."""
    raw = work / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in mnist.mnist_paths(root).values():
        with gzip.open(path, "rb") as src, open(raw / path.with_suffix("").name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return work


def notebook_loader(root: Path, limit: int | None, device: torch.device) -> torch.utils.data.DataLoader:
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(limit))
    return torch.utils.data.DataLoader(
        dataset, batch_size=64, shuffle=True, num_workers=1, pin_memory=device.type == "cuda"
    )


def time_notebook(loader, device: torch.device, train: bool) -> float:
    torch.manual_seed(1998)
    model = LeNet().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    model.train()
    tic = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        if train:
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def time_ours(root: Path, limit: int | None, device: torch.device, train: bool) -> float:
    """Includes loading the files and normalizing, as a cell does once."""
    torch.manual_seed(1998)
    tic = time.perf_counter()
    split = mnist.load_mnist(root, train=True, limit=limit)
    tensors = TensorData.from_uint8(split.images, split.labels)
    tensors = TensorData(normalize(tensors.floats(), [MEAN], [STD]), tensors.labels).to(device)
    generator = torch.Generator().manual_seed(1998)
    if train:
        cell = CellSpec("lenet", "mnist", "none", "none", None, None, 1998)  # the data is normalized above
        members = Separate(
            [cell], LeNet().to(device), TrainConfig(lr=1.0), device, 1
        )  # a one-cell run's member
        engine._train_epoch(members, tensors, 64, generator, {0: 1.0}, None, lambda *at: None, None)
    else:
        order = torch.randperm(len(tensors), generator=generator).to(device)
        for start in range(0, len(tensors), 64):
            index = order[start : start + 64]
            tensors.images[index], tensors.labels[index]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, default=SHARED, help="folder with MNIST/raw/*.gz (default: ../shared/data/mnist)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N training images (default: all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-training", action="store_true", help="time the data path only")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.root == SHARED and not (SHARED / "raw").exists():
        parser.error(f"{SHARED} not found: give --root")
    root = args.root.parent if args.root.name == "raw" else args.root
    if not mnist.raw_folder(root).exists() and (root / "raw").exists():  # ../shared/data/mnist/raw layout
        scratch = Path(tempfile.mkdtemp())
        (scratch / "MNIST").mkdir()
        (scratch / "MNIST" / "raw").symlink_to((root / "raw").resolve())
        root = scratch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as work:
        tv_root = torchvision_root(root, Path(work))
        loader = notebook_loader(tv_root, args.limit, device)
        n = len(loader.dataset)
        print(
            f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {n} training images"
        )
        numbers = {"device": str(device), "threads": torch.get_num_threads(), "images": n}
        numbers["notebook_data_s"] = time_notebook(loader, device, train=False)
        numbers["ours_data_s"] = time_ours(root, args.limit, device, train=False)
        print(
            f"data path, one epoch:  notebook {numbers['notebook_data_s']:8.2f} s   ours {numbers['ours_data_s']:8.2f} s"
            f"   ratio {numbers['notebook_data_s'] / numbers['ours_data_s']:6.1f}x"
        )
        if not args.skip_training:
            numbers["notebook_epoch_s"] = time_notebook(loader, device, train=True)
            numbers["ours_epoch_s"] = time_ours(root, args.limit, device, train=True)
            print(
                f"full epoch (LeNet):    notebook {numbers['notebook_epoch_s']:8.2f} s   ours {numbers['ours_epoch_s']:8.2f} s"
                f"   ratio {numbers['notebook_epoch_s'] / numbers['ours_epoch_s']:6.1f}x"
            )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
