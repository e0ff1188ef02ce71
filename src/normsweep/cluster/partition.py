"""The cluster's partition against what a study's jobs ask for, before anything is submitted.

SLURM refuses a job whose request no node of the partition can meet ("Requested node
configuration is not available") or, with EnforcePartLimits, whose time limit exceeds the
partition's MaxTime; both only at submission, after the workflow has started. Here the
partition is read once (``scontrol show partition`` and ``show node``, one call each) and each
problem is named by the config key to change and a value that fits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from normsweep.cluster.queue import scontrol_fields
from normsweep.study.resources import pack_runtime_minutes, runtime_minutes


@dataclass
class Partition:
    name: str
    max_time_minutes: int | None  # None: UNLIMITED
    nodes: list[dict[str, Any]] = field(default_factory=list)  # cpus, memory_mb, gpus {type: count}


def parse_time(text: str) -> int | None:
    """SLURM's time limits in minutes: ``UNLIMITED``, ``MM``, ``HH:MM:SS``, ``D-HH:MM:SS``."""
    if text in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if len(parts) == 1:
        minutes = parts[0]
    else:
        parts = [0] * (3 - len(parts)) + parts
        minutes = parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
    return minutes + int(days or 0) * 24 * 60


def parse_gres(text: str) -> dict[str, int]:
    """``gpu:a100:4,gpu:v100:2(S:0)`` -> {"a100": 4, "v100": 2}; an untyped ``gpu:2`` -> {"": 2}.
    Socket lists go before the split on commas: ``gpu:a100:4(S:0,2)`` is one item."""
    gpus: dict[str, int] = {}
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        parts = item.split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        kind, count = (parts[1], parts[2]) if len(parts) > 2 else ("", parts[1])
        gpus[kind] = gpus.get(kind, 0) + int(count)
    return gpus


def parse_partition(partition_text: str, node_text: str) -> Partition:
    """A partition from one line of ``scontrol show partition -o`` and the ``scontrol show node
    -o`` lines (only its nodes are kept)."""
    part = scontrol_fields(partition_text)
    name = part.get("PartitionName", "")
    nodes = []
    for line in node_text.splitlines():
        node = scontrol_fields(line)
        if not node or name not in node.get("Partitions", "").split(","):
            continue
        nodes.append(
            {
                "name": node.get("NodeName", ""),
                "cpus": int(node.get("CPUTot", node.get("CPUEfctv", "0")) or 0),
                "memory_mb": int(node.get("RealMemory", "0") or 0),
                "gpus": parse_gres(node.get("Gres", "")),
            }
        )
    return Partition(name, parse_time(part.get("MaxTime", "UNLIMITED")), nodes)


def read_partition(name: str | None, timeout: float = 10.0) -> Partition | None:
    """The partition (the default one when ``name`` is empty) as SLURM reports it; None when no
    SLURM answers here (no scontrol, daemons down, unknown partition)."""
    if shutil.which("scontrol") is None:
        return None
    try:
        run = [subprocess.run(["scontrol", "show", what, "-o", *args], capture_output=True, text=True,
                              timeout=timeout, env=os.environ)  # fmt: skip
               for what, args in (("partition", [name] if name else []), ("node", []))]  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if any(r.returncode != 0 for r in run):
        return None
    lines = run[0].stdout.splitlines()
    chosen = next((line for line in lines if name or "Default=YES" in line), None)
    return parse_partition(chosen, run[1].stdout) if chosen else None


def check_request(config: Mapping[str, Any], partition: Partition) -> list[str]:
    """What a job of the study asks that no node of ``partition`` has, or that exceeds its
    MaxTime; each problem names the config key and a value that fits. Empty: it fits."""
    cluster = config["cluster"]
    where = f"the nodes of partition {partition.name}"
    problems = []
    if not partition.nodes:
        return [f"partition {partition.name} has no nodes that SLURM reports"]
    gpus, cpus = int(cluster["gpus_per_cell"]), int(cluster["cpus_per_gpu"])
    cpus_needed = gpus * cpus if gpus else 1
    most_cpus = max(n["cpus"] for n in partition.nodes)
    if cpus_needed > most_cpus:
        fits = max(1, most_cpus // max(gpus, 1))
        problems.append(f"config key 'cluster.cpus_per_gpu': {cpus} ({cpus_needed} CPUs per job) but {where} have "
                        f"at most {most_cpus} CPUs; use {fits}")  # fmt: skip
    most_memory = max(n["memory_mb"] for n in partition.nodes)
    if most_memory and int(cluster["mem_mb"]) > most_memory:
        problems.append(f"config key 'cluster.mem_mb': {cluster['mem_mb']} but {where} have at most {most_memory} MB; "
                        f"use {most_memory} or less")  # fmt: skip
    model = cluster.get("gpu_model") or ""
    if gpus:
        counts = [sum(n["gpus"].values()) if not model else n["gpus"].get(model, 0) for n in partition.nodes]
        if max(counts) < gpus:
            kinds = sorted({k for n in partition.nodes for k in n["gpus"] if k})
            key = "cluster.gpu_model" if model and not max(counts) else "cluster.gpus_per_cell"
            have = (
                f"GPU types {', '.join(kinds) or 'none'}"
                if key == "cluster.gpu_model"
                else f"{max(counts)} GPUs"
            )
            problems.append(f"config key '{key}': {model if key == 'cluster.gpu_model' else gpus} but {where} "
                            f"have {have} per node")  # fmt: skip
    if partition.max_time_minutes is not None:
        for model_name in config["models"]:
            limit = max(runtime_minutes(config, model_name), pack_runtime_minutes(config, model_name))
            if limit > partition.max_time_minutes:
                problems.append(
                    f"config key 'models.{model_name}.training.epochs' / 'cluster.seconds_per_epoch': a "
                    f"{model_name} job asks for {limit} min, over partition {partition.name}'s MaxTime of "
                    f"{partition.max_time_minutes} min; fewer epochs per job or a smaller 'cluster.pack' fits"
                )
    return problems
