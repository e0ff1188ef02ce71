"""Image data, side by side in one run, per core (one process, one thread each):

1. preparing: decode + Resize + CenterCrop + write a shard (what a prepare job does, once);
2. reading a prepared batch in a shuffled order and making it float in [0, 1] (what a cell
   does every epoch on a CPU: normsweep.data.batches.Streamed), and reading its uint8 pixels only
   (on a GPU the float conversion runs on the device);
3. the notebook's protocol: ``DataLoader(ImageFolder(root, Compose([Resize, CenterCrop,
   ToTensor()])), shuffle=True)`` with no worker process (what it pays every epoch);

then the peak resident memory of a process that streams an epoch and an evaluation over a
prepared split of ``--images`` and of ten times as many (random pixels, written as a shard is).

    .venv/bin/python scripts/bench/images.py ../shared/data/imagenet-sample/imagenette-224

A GPU user runs the same on a cluster node; the numbers here are CPU numbers.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from normsweep.data import batches, prepare, shards  # noqa: E402

MEMORY = """
import resource, sys, torch
sys.path.insert(0, {src!r})
from pathlib import Path
from normsweep.data import batches, shards
from normsweep.training import engine
from normsweep.training.members.separate import Separate
from normsweep.core.spec import CellSpec, TrainConfig
torch.set_num_threads(1)
split = batches.Streamed(shards.ShardedSplit.open(Path({folder!r}), "val"), prefetch=2)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                          torch.nn.Linear(8, 10), torch.nn.LogSoftmax(dim=1))
members = Separate([CellSpec("net", "imagefolder", "none", "none", None, None, 0, arch="custom")], net,
                   TrainConfig(lr=0.01), torch.device("cpu"), 3)
engine._train_epoch(members, split, 64, torch.Generator().manual_seed(0), {{0: 0.01}}, None, lambda *at: None, None)
members.evaluate(split, 256)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def synthetic(folder: Path, n: int, crop: int) -> None:
    """A prepared val split of ``n`` random images (as prepare_shard lays one out), no decoding."""
    from normsweep.core.results import write_json_atomic

    (folder / "shards").mkdir(parents=True)
    header = prepare._npy_header((n, 3, crop, crop))
    rng = np.random.default_rng(0)
    with open(folder / "shards" / "val-00000.npy", "wb") as handle:
        handle.write(header)
        for lo in range(0, n, 500):
            handle.write(rng.integers(0, 256, (min(500, n - lo), 3, crop, crop), dtype=np.uint8).tobytes())
    manifest = {"pixels": "val-00000.npy", "shape": [n, 3, crop, crop], "header_bytes": len(header),
                "labels": [i % 10 for i in range(n)], "files": [f"{i}.jpg" for i in range(n)]}  # fmt: skip
    write_json_atomic(folder / "shards" / "val-00000.json", manifest)
    write_json_atomic(folder / "files.json", {"val": {"classes": [str(i) for i in range(10)],
                                                      "shards": ["shards/val-00000.json"]}})  # fmt: skip


def peak_mb(folder: Path) -> int:
    code = MEMORY.format(src=str(ROOT / "src"), folder=str(folder))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(run.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="an ImageFolder (root/train/<class>/, root/val/<class>/)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--images", type=int, default=1000, help="images per measurement (and the smaller memory run)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    listing = prepare.list_folder(args.root, shard_size=10**9)
    part = listing[args.split]
    order = np.random.default_rng(0).permutation(len(part["files"]))[: args.images]
    keep = sorted(order.tolist())  # a class-mixed sample of the split, in listing order
    for key in ("files", "labels", "stamps"):
        part[key] = [part[key][i] for i in keep]
    part["shards"] = [{"start": 0, "stop": len(keep), "signature": "bench"}]
    n = len(keep)
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        manifest = prepare.prepare_shard(
            args.root, listing, args.split, 0, args.resize, args.crop, Path(tmp) / "x.npy"
        )
        prepare_s = time.perf_counter() - tic
        manifest["pixels"] = "x.npy"
        split = batches.Streamed(shards.ShardedSplit(tmp, [manifest], part["classes"]), prefetch=1)
        shuffled = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        tic = time.perf_counter()
        for _ in split.batches(shuffled, args.batch):
            pass
        read_s = time.perf_counter() - tic
        tic = time.perf_counter()  # the pixels alone: on a GPU the float conversion runs on the device
        for lo in range(0, n, args.batch):
            split.split.read(shuffled[lo : lo + args.batch].numpy())
        raw_s = time.perf_counter() - tic
    from torchvision import datasets, transforms

    pipeline = transforms.Compose(
        [transforms.Resize(args.resize), transforms.CenterCrop(args.crop), transforms.ToTensor()]
    )
    folder = datasets.ImageFolder(str(args.root / args.split), pipeline)
    subset = torch.utils.data.Subset(folder, [int(i) for i in order])
    loader = torch.utils.data.DataLoader(subset, batch_size=args.batch, shuffle=True, num_workers=0)
    tic = time.perf_counter()
    for _ in loader:
        pass
    notebook_s = time.perf_counter() - tic
    small, large = args.images, 10 * args.images
    peaks = {}
    for count in (small, large):
        with tempfile.TemporaryDirectory() as tmp:
            synthetic(Path(tmp), count, args.crop)
            peaks[count] = peak_mb(Path(tmp))
    per_image = 3 * args.crop * args.crop
    print(f"{n} images of {args.root / args.split}, Resize {args.resize}, CenterCrop {args.crop}, batch {args.batch}, "
          f"one core each, torch {torch.__version__}\n")  # fmt: skip
    print("| step | images/s per core | vs the notebook's DataLoader |\n|---|---|---|")
    print(
        f"| prepare (decode, resize, crop, write; once) | {n / prepare_s:,.0f} | {notebook_s / prepare_s:.2f}x |"
    )
    print(
        f"| read a prepared shuffled batch, as float (every epoch) | {n / read_s:,.0f} | {notebook_s / read_s:.1f}x |"
    )
    print(
        f"| ... its uint8 pixels only (a GPU converts on the device) | {n / raw_s:,.0f} | {notebook_s / raw_s:.1f}x |"
    )
    print(f"| notebook: DataLoader(ImageFolder, PIL transforms) (every epoch) | {n / notebook_s:,.0f} | 1x |")
    print(f"\nshard disk: {per_image / 1e3:.0f} KB per image ({per_image * 1.28e6 / 1e9:.0f} GB for ImageNet's "
          f"1.28 M training images)")  # fmt: skip
    print(f"peak memory streaming an epoch + an evaluation: {peaks[small]} MB over {small:,} images, "
          f"{peaks[large]} MB over {large:,} ({(peaks[large] - peaks[small]):+d} MB for "
          f"{(large - small) * per_image / 1e6:,.0f} MB more pixels)")  # fmt: skip
    print(f"this process: peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
