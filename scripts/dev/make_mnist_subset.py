"""Make the small MNIST subset shipped in data/mnist-small from the official files.

    python scripts/dev/make_mnist_subset.py SOURCE_ROOT data/mnist-small --train 6000 --test 1000

SOURCE_ROOT holds MNIST/raw/*.gz; the first N images of each split are kept (MNIST's order
already mixes the classes), written as gzip IDX files in the same layout, with an MD5SUMS
file that the workflow checks instead of the official sums.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from normsweep.data import mnist


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    mnist.verify_mnist(args.source)
    out = mnist.raw_folder(args.target)
    out.mkdir(parents=True, exist_ok=True)
    sums = []
    for key, name in mnist.MNIST_FILES.items():
        limit = args.train if key.startswith("train") else args.test
        array = mnist.read_idx(mnist.mnist_paths(args.source)[key])[:limit]
        write_idx_gz(out / name, array)
        sums.append(f"{mnist.md5sum(out / name)}  {name}")
    (out / mnist.MD5SUMS).write_text("\n".join(sums) + "\n")
    print(f"wrote {args.train} train and {args.test} test images to {out}")


if __name__ == "__main__":
    main()
