"""Run the same small study at two commits and compare every cell file, number by number.

For a change that must not change any number (a refactoring of the training code), this runs,
at each commit, a deterministic CPU study through the workflow itself (each commit's own
Snakefile, rule scripts and package, in a git worktree) and compares the cell results:

- LeNet one-cell jobs and a stacked pack of 4 (2 epochs, 300 / 200 MNIST images);
- ResNet18 trained one epoch, one-cell jobs and a separate-network pack of 2;
- ResNet18 evaluation-only, one-cell jobs and an evaluation pack (with the per-image predictions).

It also checks that a study finished at the old commit is not recomputed at the new one:
``snakemake -n`` at the new commit on a copy of the old commit's finished folder must plan no
training job.

    .venv/bin/python scripts/dev/compare_commits.py OLD NEW [--keep DIR]

Prints one line per cell (identical, or the fields that differ) and exits 1 when any final
accuracy, per-epoch test accuracy or per-epoch test loss differs. The training loss is
reported too (a sum in another precision changes its last bits, never a decision).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRAINING = {"deterministic": True, "threads": 1}
LENET = {
    "data": str(ROOT / "data" / "mnist-small"),
    "grid": {"mean": [0.0, 1.0], "std": [0.1, 1.0]},
    "references": {
        "none": "none",
        "classic": {"mean": 0.1307, "std": 0.3081},
        "half": {"mean": 0.5, "std": 0.5},
        "data": "dataset",
    },
    "baseline": "classic",
    "seeds": [1998],
    "training": {"epochs": 2, "train_subset": 300, "test_subset": 200, **TRAINING},
}
RESNET = {
    "data": str(ROOT / "data" / "imagenette-tiny"),
    "image": {"resize": 40, "crop": 32, "shard_size": 16},
    "grid": {"mean": [-1.0, 1.0], "std": [0.5]},
    "references": {"imagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
    "baseline": "imagenet",
    "seeds": [1998],
}
#: study name -> (pack size, models)
STUDIES = {
    "cells": (
        1,
        {
            "lenet": LENET,
            "resnet18": {
                **RESNET,
                "training": {"epochs": 1, "batch_size": 8, "test_batch_size": 16, **TRAINING},
            },
            "rneval": {
                **RESNET,
                "arch": "resnet18",
                "training": {"epochs": 0, "test_batch_size": 16, **TRAINING},
            },
        },
    ),
    "pack4": (4, {"lenet": LENET}),
    "pack2": (
        2,
        {
            "resnet18": {
                **RESNET,
                "training": {"epochs": 1, "batch_size": 8, "test_batch_size": 16, **TRAINING},
            },
            "rneval": {
                **RESNET,
                "arch": "resnet18",
                "training": {"epochs": 0, "test_batch_size": 16, **TRAINING},
            },
        },
    ),
}
TRAIN_RULES = ("train_cell", "train_pack", "train_round_pack", "train_init_cell")


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit], check=True,
                   capture_output=True)  # fmt: skip
    return where


def snakemake(tree: Path, folder: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [str(BIN / "snakemake"), "-s", str(tree / "workflow" / "Snakefile"), "-d", str(folder),
               "--configfile", str(config), "--cores", "2", "--workflow-profile", "none",
               "--rerun-triggers", "mtime", "params", "input", "software-env", *extra]  # fmt: skip
    # the commit's own package first: the venv's editable install points at this checkout, and
    # the Snakefile and the jobs' pickled params import normsweep before a rule script can choose
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(command, capture_output=True, text=True, env=env)


def package_of(tree: Path) -> str:
    """Where a commit's runs import normsweep from (a check that the comparison compares)."""
    code = "import normsweep, sys; print(normsweep.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    ).stdout.strip()


def run_study(tree: Path, folder: Path, name: str) -> None:
    pack, models = STUDIES[name]
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"study": name, "cluster": {"pack": pack}, "models": models}))
    run = snakemake(tree, folder, config)
    if run.returncode != 0:
        raise SystemExit(f"{tree.name}: study {name} failed\n{run.stderr[-4000:]}")


def cells(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): json.loads(p.read_text())
        for p in sorted(folder.glob("results/*/*/cells/**/seed~*.json"))
    }


def number(x: float | None) -> float:
    return math.nan if x is None else float(x)  # a result file writes NaN as null


def same(a: float | None, b: float | None) -> bool:
    x, y = number(a), number(b)
    return (math.isnan(x) and math.isnan(y)) or x == y


def compare(old: dict, new: dict) -> list[str]:
    """The fields in which two cell results differ (empty: identical numbers)."""
    diffs = []
    if not same(old["final_accuracy"], new["final_accuracy"]):
        diffs.append(f"final accuracy {old['final_accuracy']} -> {new['final_accuracy']}")
    if len(old["epochs"]) != len(new["epochs"]):
        return [*diffs, f"{len(old['epochs'])} -> {len(new['epochs'])} epochs"]
    for a, b in zip(old["epochs"], new["epochs"], strict=True):
        for key in ("test_accuracy", "test_loss", "lr"):
            if not same(a[key], b[key]):
                diffs.append(f"epoch {a['epoch']} {key} {a[key]!r} -> {b[key]!r}")
    return diffs


def train_loss_drift(old: dict, new: dict) -> float:
    drift = 0.0
    for a, b in zip(old["epochs"], new["epochs"], strict=True):
        x, y = number(a["train_loss"]), number(b["train_loss"])
        if math.isfinite(x) and math.isfinite(y) and x != y:
            drift = max(drift, abs(x - y) / abs(x))
    return drift


def predictions_equal(old: Path, new: Path) -> bool | None:
    import numpy as np

    if not old.exists() and not new.exists():
        return None
    a, b = np.load(old), np.load(new)
    return all(np.array_equal(a[k], b[k]) for k in a.files) and a.files == b.files


def planned_training_jobs(tree: Path, finished: Path, copy: Path) -> dict[str, int]:
    shutil.copytree(finished, copy, symlinks=True)
    run = snakemake(tree, copy, copy / "config.yaml", "-n", "--quiet", "rules")
    counts: dict[str, int] = {}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in TRAIN_RULES and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    if run.returncode != 0:
        raise SystemExit(f"snakemake -n at {tree.name} failed\n{run.stderr[-3000:]}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="normsweep-compare-"))
    base.mkdir(parents=True, exist_ok=True)
    trees = {}
    try:
        for label, commit in (("old", args.old), ("new", args.new)):
            trees[label] = worktree(commit, base / f"tree-{label}")
            where = package_of(trees[label])
            if not where.startswith(str(trees[label])):
                raise SystemExit(
                    f"{commit}: its runs would import normsweep from {where}, not from its own tree"
                )
            print(f"{label} {commit}: normsweep from {where}")
        failures, n = 0, 0
        for name in STUDIES:
            for label in ("old", "new"):
                run_study(trees[label], base / label / name, name)
            old_cells, new_cells = cells(base / "old" / name), cells(base / "new" / name)
            if set(old_cells) != set(new_cells):
                print(f"{name}: other cell files: {sorted(set(old_cells) ^ set(new_cells))}")
                failures += 1
            for path in sorted(set(old_cells) & set(new_cells)):
                n += 1
                diffs = compare(old_cells[path], new_cells[path])
                stem = path.removesuffix(".json") + ".predictions.npz"
                preds = predictions_equal(base / "old" / name / stem, base / "new" / name / stem)
                if preds is False:
                    diffs.append("predictions differ")
                failures += bool(diffs)
                pack = new_cells[path].get("pack_size", 1)
                extra = ", predictions identical" if preds else ""
                drift = train_loss_drift(old_cells[path], new_cells[path])
                extra += f", train loss drift {drift:.1e}" if drift else ""
                verdict = "; ".join(diffs) if diffs else "identical"
                print(f"{name:6} pack {pack}  {path}: {verdict}{extra}")
            planned = planned_training_jobs(trees["new"], base / "old" / name, base / "rerun" / name)
            print(f"{name}: snakemake -n at {args.new} on the study finished at {args.old}: "
                  f"{sum(planned.values())} training jobs planned {planned or ''}")  # fmt: skip
            failures += bool(planned)
        print(f"{n} cells compared, {failures} differences")
        sys.exit(1 if failures else 0)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           capture_output=True)  # fmt: skip
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
