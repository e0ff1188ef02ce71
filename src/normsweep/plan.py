"""What a run will cost, before it starts: cells to run and done, jobs, GPU-hours.

Reads only the config and the result files, so it works on a login node with no cluster
reachable. The time per epoch is measured from finished cells of the same model when there
are any (their median), else taken from the config's ``cluster.seconds_per_epoch``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cells as cellnames
from .results import read_result


@dataclass
class ModelPlan:
    model: str
    cells: int
    done: int
    to_run: int
    jobs: int
    epochs: int
    seconds_per_epoch: float
    seconds_source: str  # "measured on N cells (device)" or "configured"
    gpu_hours: float


def plan(config: Mapping[str, Any], workdir: str | Path = ".", pack: int = 1) -> list[ModelPlan]:
    """One line per model; ``pack`` cells share one SLURM job when packing is on."""
    workdir = Path(workdir)
    study = config["study"]
    plans = []
    for model, block in config["models"].items():
        all_cells = cellnames.study_cells(model, block)
        measured: list[float] = []
        devices: set[str] = set()
        done = 0
        for cell in all_cells:
            path = workdir / cell.result_path(study)
            if not path.exists():
                continue
            try:
                result = read_result(path)
            except (ValueError, KeyError, OSError):
                continue  # unreadable: snakemake will redo it, so count it as to run
            done += 1
            measured += [e.seconds for e in result.epochs if e.epoch > 0 and math.isfinite(e.seconds)]
            devices.add(result.device_name)
        to_run = len(all_cells) - done
        epochs = block["training"]["epochs"]
        if measured:
            seconds = statistics.median(measured)
            source = f"measured, median of {len(measured)} epochs on {', '.join(sorted(devices))}"
        else:
            seconds = float(config["cluster"]["seconds_per_epoch"])
            source = "configured (cluster.seconds_per_epoch)"
        gpus = config["cluster"]["gpus_per_cell"]
        plans.append(
            ModelPlan(
                model=model,
                cells=len(all_cells),
                done=done,
                to_run=to_run,
                jobs=math.ceil(to_run / max(pack, 1)),
                epochs=epochs,
                seconds_per_epoch=seconds,
                seconds_source=source,
                gpu_hours=to_run * max(epochs, 1) * seconds * max(gpus, 1) / 3600,
            )
        )
    return plans


def format_plan(plans: list[ModelPlan], gpus_per_cell: int) -> str:
    unit = "GPU-hours" if gpus_per_cell else "CPU-job-hours"
    lines = [
        f"{'model':<10} {'cells':>7} {'done':>7} {'to run':>7} {'jobs':>7} {'epochs':>6} {'s/epoch':>8} {unit:>14}"
    ]
    for p in plans:
        lines.append(
            f"{p.model:<10} {p.cells:>7} {p.done:>7} {p.to_run:>7} {p.jobs:>7} {p.epochs:>6} "
            f"{p.seconds_per_epoch:>8.1f} {p.gpu_hours:>14.2f}"
        )
    lines += [f"  {p.model}: seconds per epoch {p.seconds_source}" for p in plans]
    total = sum(p.gpu_hours for p in plans)
    lines.append(
        f"total: {sum(p.to_run for p in plans)} cells to run in {sum(p.jobs for p in plans)} jobs, "
        f"about {total:.2f} {unit}"
    )
    return "\n".join(lines)
