"""What each job of the workflow is given, from the config: its time limit, its resources
(the cluster's, and how it runs: device, checkpoints, the execution switches) and its params
(what makes a cell's result, so that a change reruns the cell)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from normsweep.core.spec import EXECUTION_KEYS  # handed to the jobs as threads and resources, never as params
from normsweep.study.config import model_head


def runtime_minutes(config: Mapping[str, Any], model: str, seconds_per_epoch: float | None = None) -> int:
    """The time limit of one training job of ``model``: its epochs at ``seconds_per_epoch``
    (default: the config's, for one cell) with a 50% margin, plus 5 minutes of start-up."""
    epochs = config["models"][model]["training"]["epochs"]
    seconds = config["cluster"]["seconds_per_epoch"] if seconds_per_epoch is None else seconds_per_epoch
    return math.ceil((max(epochs, 1) * seconds * 1.5 + 300) / 60)


def pack_seconds_per_epoch(config: Mapping[str, Any], size: int | None = None) -> float:
    """Expected seconds per epoch of a pack of ``size`` cells (default: the configured pack):
    ``cluster.pack_seconds_per_epoch`` when given, else size x seconds_per_epoch (the cells one
    after another: an upper bound, since a pack is never slower on a GPU than its cells in turn)."""
    cluster = config["cluster"]
    size = cluster["pack"] if size is None else size
    if size > 1 and cluster.get("pack_seconds_per_epoch"):
        # measured for packs of cluster.pack cells; a larger pack takes proportionally longer
        larger = size / cluster["pack"] if 1 < cluster["pack"] < size else 1.0
        return float(cluster["pack_seconds_per_epoch"]) * larger
    return size * float(cluster["seconds_per_epoch"])


def pack_runtime_minutes(config: Mapping[str, Any], model: str, size: int | None = None) -> int:
    """The time limit of one pack job of ``size`` cells (default: cluster.pack): as a cell's,
    at the pack's seconds per epoch."""
    return runtime_minutes(config, model, pack_seconds_per_epoch(config, size))


def round_pack_runtime_minutes(config: Mapping[str, Any], model: str) -> int:
    """The time limit of a refinement round trained as one pack: its ``optuna.batch`` trial
    cells, however large ``cluster.pack`` is."""
    optuna = config["models"][model].get("optuna") or {}
    return pack_runtime_minutes(config, model, int(optuna.get("batch") or config["cluster"]["pack"]))


#: Training keys added after studies were finished, at the value those studies computed with:
#: left out of a cell's params, so that an upgrade reruns nothing (another value reruns the cell).
NEWER_DEFAULTS = {"precision": "fp32"}


def cell_params(model_config: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """What makes a cell's result (its rule's params, so that a change reruns the cell): the
    data and the training knobs, without the execution settings (EXECUTION_KEYS) and without
    the grid or references (adding grid points reruns no finished cell)."""
    params = {k: model_config.get(k) for k in ("data", "training", "image", "weights", "weights_sha256")}
    for key in ("arch", "arch_kwargs"):  # only when given: studies from before they existed keep their params
        if model_config.get(key):
            params[key] = model_config[key]
    params["training"] = {
        k: v
        for k, v in (params["training"] or {}).items()
        if k not in EXECUTION_KEYS and NEWER_DEFAULTS.get(k, object()) != v
    }
    if model_config.get("predict_over", "all") != "all":
        params["predict_over"] = model_config["predict_over"]
    if name and (head := model_head(name, model_config)) is not None and head.kind == "mapped":
        # scored on the weights' own outputs: cells scored before on a random head are redone
        params["head"] = "mapped"  # (predict_over, when not all, is a param of its own above)
    return params


def checkpoint_seconds(training: Mapping[str, Any]) -> int:
    """``training.checkpoint_minutes`` as a job's whole seconds (at least 1); 0 when unset."""
    minutes = training.get("checkpoint_minutes")
    return 0 if minutes is None else max(1, round(60 * minutes))


def with_execution(
    cell: Mapping[str, Any],
    threads: int,
    device: str,
    checkpoint_seconds: int = 0,
    switches: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A model block for the training code from a rule's params and how its job runs
    (``checkpoint_seconds``: 0 saves at epoch ends only; ``switches``: channels_last,
    cudnn_benchmark and compile as the job's resources carry them)."""
    execution = {
        "threads": int(threads),
        "device": str(device),
        "checkpoint_minutes": checkpoint_seconds / 60.0 if checkpoint_seconds else None,
        **{k: v for k, v in (switches or {}).items() if k in SWITCHES},
    }
    return {**cell, "training": {**cell.get("training", {}), **execution}}


#: The execution switches a training job gets as resources ``torch_<switch>`` (auto | true | false, as strings).
SWITCHES = ("channels_last", "cudnn_benchmark", "compile")


def switch_resources(training: Mapping[str, Any]) -> dict[str, str]:
    """A model's execution switches as a job's resources (strings: a resource is a number or a string)."""
    return {k: str(training.get(k, "auto" if k != "compile" else False)).lower() for k in SWITCHES}


def cluster_resources(config: Mapping[str, Any]) -> dict[str, Any]:
    """What every training job asks the cluster for, besides its time limit. Partition,
    account and GPU model are left out when empty, so that a profile's default resources
    (scripts/install_profile.py) can give them; a CPU-only study asks for no GPU model."""
    cluster = config["cluster"]
    gpus = cluster["gpus_per_cell"]
    resources: dict[str, Any] = {
        "mem_mb": cluster["mem_mb"],
        "gpu": gpus,
        "cpus_per_gpu": cluster["cpus_per_gpu"] if gpus else 0,
    }
    for key, value in (("slurm_partition", cluster["partition"]), ("slurm_account", cluster["account"])):
        if value:
            resources[key] = value
    if not gpus:
        resources["gpu_model"] = ""  # overrides a profile's default: no GPU, no model
    elif cluster["gpu_model"]:
        resources["gpu_model"] = cluster["gpu_model"]
    return resources


def signal_lead(config: Mapping[str, Any], runtime: int) -> int:
    """Seconds before a job's time limit (``runtime`` minutes) that it is told to save and end:
    ``cluster.signal_seconds``, at most a quarter of the limit (a signal at the start would
    stop every try before its first batch)."""
    return min(int(config["cluster"]["signal_seconds"]), runtime * 60 // 4)


def sbatch_extra(config: Mapping[str, Any], runtime: int) -> str:
    """A training job's further sbatch options (the plugin's ``slurm_extra``): ``--signal`` for
    the save before its time limit (SIGTERM reaches every process of the plugin's srun step:
    the job's snakemake waits for its script, which saves; measured in docs/usage.md) and the
    config's ``cluster.slurm_extra``."""
    lead = signal_lead(config, runtime)
    options = [f"--signal=TERM@{lead}"] if lead else []
    return " ".join([*options, *config["cluster"]["slurm_extra"].split()])


def per_model(values: Mapping[str, Any]) -> Any:
    """A rule value from {model: value}: the value itself when every model has the same (a
    constant costs nothing per job when snakemake plans 10,000 cells), else a function of
    the job's wildcards."""
    if len({repr(v) for v in values.values()}) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[wildcards.model]
