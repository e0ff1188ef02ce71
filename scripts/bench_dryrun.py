"""Time `snakemake -n` of normsweep against a bare Snakefile with the same number of jobs.

    .venv/bin/python scripts/bench_dryrun.py                 # 225, 2,000 and 10,000 cells
    .venv/bin/python scripts/bench_dryrun.py --cells 225 2000

The bare Snakefile has one rule that only touches files and a rule all over N of them: the
floor of what Snakemake itself costs to plan N jobs. Both are planned from scratch (no
results yet) in fresh folders, each timed the best of --repeat runs.
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

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, nargs="+", default=[225, 2000, 10000])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
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
