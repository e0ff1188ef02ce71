"""Make the tiny ImageFolder shipped in data/imagenette-tiny from real ImageNet photos.

    python scripts/dev/make_imagefolder_subset.py ../shared/data/imagenet-sample/imagenette-224 data/imagenette-tiny

Keeps the first --classes classes, the first --train and --val images of each, resized to
--size pixels (square) and saved as JPEG, in the train/<class>/ and val/<class>/ layout.
ImageNet's terms apply to these photos: research and teaching only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--train", type=int, default=10)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    classes = sorted(p.name for p in (args.source / "train").iterdir() if p.is_dir())[: args.classes]
    for split, n in (("train", args.train), ("val", args.val)):
        for name in classes:
            out = args.target / split / name
            out.mkdir(parents=True, exist_ok=True)
            for path in sorted((args.source / split / name).iterdir())[:n]:
                with Image.open(path) as image:
                    image.convert("RGB").resize((args.size, args.size), Image.BICUBIC).save(
                        out / path.name, quality=90
                    )
    print(f"{len(classes)} classes into {args.target}")


if __name__ == "__main__":
    main()
