"""Time per image of an ImageFolder split: decoding the JPEGs (what the first epoch of the
notebook's protocol pays every epoch, and what normsweep pays once) against reading
normsweep's tensor cache (what every later cell pays), in one run.

    .venv/bin/python scripts/bench_images.py ../shared/data/imagenet-sample/imagenette-224
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from normsweep import images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        tic = time.perf_counter()
        first = images.load_cached(args.root, args.split, args.resize, args.crop, cache)  # decodes, writes
        decode_s = time.perf_counter() - tic
        tic = time.perf_counter()
        images.load_cached(args.root, args.split, args.resize, args.crop, cache)  # reads the cache
        cached_s = time.perf_counter() - tic
    n = len(first.labels)
    print(
        f"{n} images, Resize {args.resize}, CenterCrop {args.crop}: "
        f"decode {1000 * decode_s / n:.2f} ms/image, cached {1000 * cached_s / n:.3f} ms/image, "
        f"ratio {decode_s / cached_s:.0f}x"
    )


if __name__ == "__main__":
    main()
