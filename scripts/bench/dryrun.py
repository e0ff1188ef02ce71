"""Time `snakemake -n` of normsweep against a bare Snakefile with the same number of jobs.

    .venv/bin/python scripts/bench/dryrun.py                 # 225, 2,000 and 10,000 cells
    .venv/bin/python scripts/bench/dryrun.py --cells 225 2000
    .venv/bin/python scripts/bench/dryrun.py --imagenet          # the data checks at ImageNet's size

The bare Snakefile has one rule that only touches files and a rule all over N of them: the
floor of what Snakemake itself costs to plan N jobs. Both are planned from scratch (no
results yet) in fresh folders, each timed the best of --repeat runs.

--imagenet times what a dry run of an ImageFolder study of ImageNet's size does for its data,
on a made layout (1,000 class folders per split, a listing of 1,281,167 + 50,000 files, a
record, --cells finished results): reading the listing (every dry run of an image study did
it before the provenance checks) against the checks added with them (the folder's stamp, the
record's version, the finished results' data versions).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

BARE = """
N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule touch:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""


def timed(command: list[str], cwd: Path, repeat: int) -> tuple[float, str]:
    best, out = math.inf, ""
    for _ in range(repeat):
        tic = time.perf_counter()
        run = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - tic)
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-2000:])
        out = run.stdout
    return best, out


def jobs_planned(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total":
            return int(parts[1])
    return -1


def imagenet_checks(cells: int, repeat: int) -> None:
    import json
    import os

    from normsweep.core import provenance
    from normsweep.data import prepare

    def best(fn):
        out = math.inf
        for _ in range(repeat):
            tic = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - tic)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        root, listing_path, record_path = (
            Path(tmp, "imagenet"),
            Path(tmp, "listing.json"),
            Path(tmp, "files.json"),
        )
        listing, record = {}, {"version": "0123456789abcdef"}
        for split, n in (("train", 1_281_167), ("val", 50_000)):
            classes = [f"n{i:08d}" for i in range(1000)]
            for c in classes:
                (root / split / c).mkdir(parents=True)
            files = [f"{classes[i % 1000]}/{classes[i % 1000]}_{i}.JPEG" for i in range(n)]
            shards = [
                {"start": i * 5000, "stop": min(i * 5000 + 5000, n), "signature": f"{i:016x}"}
                for i in range(-(-n // 5000))
            ]
            listing[split] = {"classes": classes, "files": files, "labels": [i % 1000 for i in range(n)],
                              "stamps": [[110_000, 1_700_000_000_000_000_000]] * n, "shards": shards}  # fmt: skip
            record[split] = {"classes": classes, "labels": [[c, n // 1000] for c in range(1000)],
                             "signatures": [s["signature"] for s in shards]}  # fmt: skip
        listing_path.write_text(json.dumps(listing))
        record_path.write_text(json.dumps(record))
        paths = [Path(tmp, "cells", f"{i}.json") for i in range(cells)]
        paths[0].parent.mkdir()
        for p in paths:
            p.write_text(json.dumps({"data_version": record["version"], "accuracy": 0.7}))
        written = record_path.stat().st_mtime_ns
        older = written - 10**9
        newer = written + 10**9
        read_listing = best(lambda: json.loads(listing_path.read_text()))
        stamp = best(lambda: prepare.folder_stamp(root))
        for p in paths:
            os.utime(p, ns=(newer, newer))
        after = best(lambda: provenance.stale_cells(paths, record_path))
        for p in paths:
            os.utime(p, ns=(older, older))
        remade = best(lambda: provenance.stale_cells(paths, record_path))
        print(
            f"listing of {listing_path.stat().st_size / 1e6:.0f} MB read (before and after): {read_listing:.2f} s"
        )
        print(f"folder stamp, 2 x 1,000 class folders (before and after): {stamp:.3f} s")
        print(
            f"record and {cells} results written after it (added; a study whose data did not change): {after:.3f} s"
        )
        print(
            f"record and {cells} results older than it (added; after the data was checked again): {remade:.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, nargs="+", default=[225, 2000, 10000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--imagenet", action="store_true", help="time the data checks at ImageNet's size")
    args = parser.parse_args()
    if args.imagenet:
        imagenet_checks(max(args.cells) if args.cells != [225, 2000, 10000] else 2000, args.repeat)
        return
    print(
        f"{'cells':>7} {'normsweep jobs':>15} {'normsweep s':>12} {'bare jobs':>10} {'bare s':>8} {'ratio':>6}"
    )
    for n in args.cells:
        side = math.isqrt(n)
        means = side
        stds = math.ceil(n / side)
        with tempfile.TemporaryDirectory() as tmp:
            ours, bare = Path(tmp) / "ours", Path(tmp) / "bare"
            (ours / "config").mkdir(parents=True)
            bare.mkdir()
            config = {
                "study": "bench",
                "models": {
                    "lenet": {
                        "data": str(ROOT / "data/mnist-small"),
                        "grid": {
                            "mean": {"start": -2, "stop": 3, "num": means},
                            "std": {"start": 0.02, "stop": 2, "num": stds},
                        },
                        "references": {},
                        "seeds": [1],
                    }
                },
            }
            (ours / "config/config.yaml").write_text(yaml.safe_dump(config))
            cells = means * stds
            ours_s, ours_out = timed(
                [SNAKEMAKE, "-s", str(ROOT / "workflow/Snakefile"), "-n", "--quiet", "rules"],
                ours,
                args.repeat,
            )
            (bare / "Snakefile").write_text(BARE.format(n=cells + 4))
            bare_s, bare_out = timed([SNAKEMAKE, "-n", "--quiet", "rules"], bare, args.repeat)
            print(
                f"{cells:>7} {jobs_planned(ours_out):>15} {ours_s:>12.2f} {jobs_planned(bare_out):>10} "
                f"{bare_s:>8.2f} {ours_s / bare_s:>6.2f}"
            )


if __name__ == "__main__":
    main()
