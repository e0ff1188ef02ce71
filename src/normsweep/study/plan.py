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

from normsweep.core import cells as cellnames
from normsweep.core.results import read_result


@dataclass
class ModelPlan:
    model: str
    cells: int
    done: int
    to_run: int
    jobs: int  # at pack 1: one job per cell
    epochs: int
    seconds_per_epoch: float
    seconds_source: str  # "measured on N cells (device)" or "configured"
    gpu_hours: float  # at pack 1
    pack: int = 1
    pack_jobs: int = 0  # at the configured pack: packs per model and seed
    pack_seconds_per_epoch: float = 0.0
    pack_seconds_source: str = ""
    pack_gpu_hours: float = 0.0
    optuna_trials: int = 0  # refinement: trials asked in rounds, each a cell (or all one pack)
    optuna_rounds: int = 0
    optuna_jobs: int = 0
    optuna_gpu_hours: float = 0.0
    precision: str = "fp32"  # training.precision: the arithmetic its cells compute in


def plan(config: Mapping[str, Any], workdir: str | Path = ".", pack: int | None = None) -> list[ModelPlan]:
    """One line per model: cells, jobs and GPU-hours one job per cell, and with ``pack`` cells
    per job (default: the config's ``cluster.pack``; packs hold cells of one seed)."""
    from normsweep.study.resources import pack_seconds_per_epoch

    workdir = Path(workdir)
    study = config["study"]
    pack = config["cluster"]["pack"] if pack is None else pack
    plans = []
    for model, block in config["models"].items():
        all_cells = cellnames.study_cells(model, block)
        measured: list[float] = []
        measured_pack: list[float] = []
        devices: set[str] = set()
        todo_seeds: dict[int, int] = {}
        done = 0
        for cell in all_cells:
            path = workdir / cell.result_path(study)
            try:
                result = read_result(path) if path.exists() else None
            except (ValueError, KeyError, OSError):
                result = None  # unreadable: it will be made again, so count it as to run
            if result is None:
                todo_seeds[cell.seed] = todo_seeds.get(cell.seed, 0) + 1
                continue
            done += 1
            seconds = [e.seconds for e in result.epochs if e.epoch > 0 and math.isfinite(e.seconds)]
            if result.pack_size == 1:
                measured += seconds
            elif result.pack_size == pack:
                measured_pack += seconds
            devices.add(result.device_name)
        to_run = len(all_cells) - done
        epochs = max(block["training"]["epochs"], 1)
        if measured:
            seconds = statistics.median(measured)
            source = f"measured, median of {len(measured)} epochs on {', '.join(sorted(devices))}"
        else:
            seconds = float(config["cluster"]["seconds_per_epoch"])
            source = "configured (cluster.seconds_per_epoch)"
        if measured_pack:
            pack_seconds = statistics.median(measured_pack)
            pack_source = f"measured on packs of {pack}, median of {len(measured_pack)} member-epochs"
        elif pack > 1 and config["cluster"].get("pack_seconds_per_epoch"):
            pack_seconds = pack_seconds_per_epoch(config, pack)
            pack_source = "configured (cluster.pack_seconds_per_epoch)"
        else:
            pack_seconds = pack * seconds
            pack_source = "pack x seconds per epoch: an upper bound (set cluster.pack_seconds_per_epoch)"
        gpus = max(config["cluster"]["gpus_per_cell"], 1)
        pack_jobs = sum(math.ceil(n / max(pack, 1)) for n in todo_seeds.values())
        opt = block.get("optuna") or {}
        sizes = cellnames.rounds(opt["n_trials"], opt["batch"]) if opt else []
        trials = sum(sizes) + len(opt.get("retrain_seeds", [])) if opt else 0
        if pack > 1:  # one pack per round, and one job per retrained seed
            optuna_jobs = len(sizes) + len(opt.get("retrain_seeds", []))
            optuna_hours = (
                (
                    sum(pack_seconds_per_epoch(config, n) if n > 1 else seconds for n in sizes) * epochs
                    + len(opt.get("retrain_seeds", [])) * epochs * seconds
                )
                * gpus
                / 3600
            )
        else:
            optuna_jobs = trials
            optuna_hours = trials * epochs * seconds * gpus / 3600
        plans.append(
            ModelPlan(
                optuna_trials=sum(sizes),
                optuna_rounds=len(sizes),
                optuna_jobs=optuna_jobs,
                optuna_gpu_hours=optuna_hours,
                model=model,
                cells=len(all_cells),
                done=done,
                to_run=to_run,
                jobs=to_run,
                epochs=epochs,
                precision=str(block["training"].get("precision") or "fp32"),
                seconds_per_epoch=seconds,
                seconds_source=source,
                gpu_hours=to_run * epochs * seconds * gpus / 3600,
                pack=pack,
                pack_jobs=pack_jobs,
                pack_seconds_per_epoch=pack_seconds,
                pack_seconds_source=pack_source,
                pack_gpu_hours=pack_jobs * epochs * pack_seconds * gpus / 3600,
            )
        )
    return plans


@dataclass
class DataPlan:
    """One prepared copy of an ImageFolder (a folder and its preprocessing: the data key) in the
    data cache, for every model that reads it: images per split, shards (prepare jobs, CPU
    only) and those already in the cache, and the disk; ``listed``: from this study's listing,
    else counted now."""

    key: str
    folder: str
    models: list[str]
    image: dict[str, Any]
    images: dict[str, int]
    shards: int
    cached: int
    listed: bool
    cache: Path

    @property
    def bytes(self) -> int:
        return sum(self.images.values()) * 3 * self.image["crop"] ** 2

    def line(self) -> str:
        counts = " + ".join(f"{n:,} {split}" for split, n in self.images.items())
        source = "listed" if self.listed else "counted now; the first run lists them"
        new = self.bytes * (self.shards - self.cached) / max(self.shards, 1)
        how = f"resize {self.image['resize']}, crop {self.image['crop']}, {self.image.get('interpolation') or 'bilinear'}"
        return (
            f"  {self.folder} ({how}) for {', '.join(self.models)}: {counts} images ({source}) -> {self.shards} "
            f"shard{'s' if self.shards != 1 else ''} in {self.cache / self.key}: {self.shards - self.cached} to prepare on CPUs, {self.cached} "
            f"reused from the cache; {self.bytes / 1e9:.2f} GB ({new / 1e9:.2f} GB new)"
        )


def data_plans(config: Mapping[str, Any], workdir: str | Path = ".") -> list[DataPlan]:
    """What preparing the study's ImageFolders costs: one copy per data key (folder and
    preprocessing), shared by the models that ask for it and by other studies (the data cache)."""
    import json
    import os

    from normsweep.data.cache import cache_paths
    from normsweep.data.imagenet import is_flat
    from normsweep.study.config import image_splits, info_of

    groups: dict[str, list[str]] = {}
    for model, block in config["models"].items():
        if info_of(model, block).dataset != "mnist":
            groups.setdefault(cellnames.data_key(block, True), []).append(model)
    cache = Path(config.get("data_cache") or "results/data")
    cache = cache if cache.is_absolute() else Path(workdir) / cache
    plans = []
    for key, models in groups.items():
        blocks = [config["models"][m] for m in models]
        splits = [s for s in ("train", "val") if any(s in image_splits(b) for b in blocks)]
        size = blocks[0]["image"].get("shard_size", 10_000)
        study = Path(workdir) / cellnames.results_dir(config["study"])
        listings = [study / m / "data" / key / "listing.json" for m in models]
        listing = next((json.loads(f.read_text()) for f in listings if f.exists()), {})
        if not all(split in listing for split in splits):
            listing = {}
        images, cached, shards = {}, 0, 0
        for split in splits:
            if listing:
                images[split] = len(listing[split]["files"])
                signatures = [s["signature"] for s in listing[split]["shards"]]
                cached += sum(
                    cache_paths(cache, key, split, i, sig)[0].exists() for i, sig in enumerate(signatures)
                )
            else:
                root = Path(blocks[0]["data"]) / split
                classes = [e.path for e in os.scandir(root) if e.is_dir()] if root.is_dir() else []
                if is_flat(root):  # ImageNet's own validation layout (normsweep.data.imagenet)
                    classes = [str(root)]
                images[split] = sum(sum(1 for e in os.scandir(c) if e.is_file()) for c in classes)
                present = len(list((cache / key).glob(f"{split}-*.npy"))) if (cache / key).is_dir() else 0
                cached += min(present, -(-images[split] // size))
            shards += -(-images[split] // size)
        plans.append(DataPlan(key, str(blocks[0]["data"]), models, dict(blocks[0]["image"]), images, shards,
                              min(cached, shards), bool(listing), cache))  # fmt: skip
    return plans


def format_data_plans(plans: list[DataPlan]) -> str:
    if not plans:
        return ""
    models = sum(len(p.models) for p in plans)
    lines = [f"data: {len(plans)} prepared cop{'y' if len(plans) == 1 else 'ies'} for {models} image model(s) "
             "(one per folder and preprocessing, shared with every study using the same data cache)"]  # fmt: skip
    return "\n".join(lines + [p.line() for p in plans])


def waves_line(jobs: int, cap: int | None) -> str | None:
    """How ``jobs`` flow through a cap of ``cap`` jobs queued at once (MaxSubmitJobs): snakemake
    keeps ``cap`` submitted (the profile's ``jobs``) and submits the next as each ends."""
    if not cap or jobs <= cap:
        return None
    return (f"under this cluster's cap of {cap} jobs at once: {jobs} jobs in about {math.ceil(jobs / cap)} "
            f"waves (snakemake submits the next as one ends; install the profile with --max-jobs {cap})")  # fmt: skip


def format_plan(plans: list[ModelPlan], gpus_per_cell: int) -> str:
    unit = "GPU-hours" if gpus_per_cell else "CPU-job-hours"
    pack = max((p.pack for p in plans), default=1)
    lines = [
        f"{'model':<10} {'cells':>7} {'done':>7} {'to run':>7} {'epochs':>6} | pack 1: {'jobs':>6} {'s/epoch':>8} "
        f"{unit:>10}" + (f" | pack {pack}: {'jobs':>6} {'s/epoch':>8} {unit:>10}" if pack > 1 else "")
    ]
    for p in plans:
        line = (
            f"{p.model:<10} {p.cells:>7} {p.done:>7} {p.to_run:>7} {p.epochs:>6} |         {p.jobs:>6} "
            f"{p.seconds_per_epoch:>8.1f} {p.gpu_hours:>10.2f}"
        )
        if pack > 1:
            line += f" |         {p.pack_jobs:>6} {p.pack_seconds_per_epoch:>8.1f} {p.pack_gpu_hours:>10.2f}"
        lines.append(line)
    lines += [f"  {p.model}: seconds per epoch {p.seconds_source}; precision {p.precision}" for p in plans]
    if pack > 1:
        lines += [f"  {p.model}: seconds per pack epoch {p.pack_seconds_source}" for p in plans]
    total = sum(p.gpu_hours for p in plans)
    lines.append(
        f"total, one job per cell: {sum(p.to_run for p in plans)} cells to run in {sum(p.jobs for p in plans)} jobs, "
        f"about {total:.2f} {unit}"
    )
    for p in plans:
        if p.optuna_rounds:
            lines.append(
                f"  {p.model}: Optuna refinement: {p.optuna_trials} trials in {p.optuna_rounds} rounds (one after "
                f"another), then the best point retrained: {p.optuna_jobs} jobs, about {p.optuna_gpu_hours:.2f} {unit}"
            )
    if pack > 1:
        lines.append(
            f"total, packs of {pack}: {sum(p.pack_jobs for p in plans)} jobs, about "
            f"{sum(p.pack_gpu_hours for p in plans):.2f} {unit}"
        )
    return "\n".join(lines)


def weights_line(model: str, block: Mapping[str, Any]) -> str | None:
    """Where a model's pretrained weights are read from and whether they are there (not hashed
    here: the run checks the sha256 before its first job); None without weights."""
    from normsweep.models.catalog import ArchError, arch_of, weights_location
    from normsweep.models.published import preprocessing

    if not block.get("weights"):
        return None
    arch = arch_of(model, block)
    try:
        file, _, url = weights_location(arch, block["weights"], block.get("weights_sha256"))
        own = preprocessing(arch, block["weights"])
    except ArchError as error:
        return f"  {model} weights: {error}"
    about = f" ({own.source}, published top-1 {own.published_top1:.4f})" if own and own.published_top1 else ""
    if file.is_file():
        return f"  {model} weights {block['weights']}{about}: found, {file}"
    where = f"put {url} (downloaded elsewhere) at {file}" if url else f"no such file {file}"
    return f"  {model} weights {block['weights']}{about}: MISSING: {where}"


def stale_data(config: Mapping[str, Any], workdir: str | Path = ".") -> list[str]:
    """For each model whose finished cells ran on another version of its data than its record
    holds now: which (every one of them) and what to do (normsweep.core.provenance)."""
    from normsweep.core.provenance import describe_stale, record_version, stale_cells
    from normsweep.study.config import info_of

    said = []
    for model, block in config["models"].items():
        images = info_of(model, block).dataset != "mnist"
        study = Path(workdir) / cellnames.results_dir(config["study"])
        record = study / model / "data" / cellnames.data_key(block, images) / "files.json"
        results = [
            Path(workdir) / c.result_path(config["study"]) for c in cellnames.study_cells(model, block)
        ]
        if stale := stale_cells(results, record):
            said.append(describe_stale(model, stale, record_version(record), limit=len(stale)))
    return said
