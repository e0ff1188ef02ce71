"""The grid: which (model, mean, std, seed) cells a study holds, and how a cell is named.

A cell's name is its identity: the training job reads its mean and std back from the
wildcards, so a path such as ``results/demo/lenet/cells/mean~0.1307/std~0.3081/seed~1998.json``
always holds what its name says, and adding grid points later never renames a finished cell.

Two symbolic values exist besides numbers:
- ``none``: no normalization at all (the notebook's ``mean=None``);
- ``dataset``: the exact statistics of the training set, computed by the ``dataset_stats`` rule.
Per-channel values (one per RGB channel) are joined by underscores: ``0.485_0.456_0.406``.
Not commas: a SLURM job names its cell to the Snakemake inside it as ``--target-jobs
rule:model=..,mean=..,std=..`` and Snakemake splits that on every comma (snakemake issue
#2366), so a comma in a wildcard fails every per-channel cell on a cluster. Names written with
commas by older versions are still read (:func:`parse_value`), and
``scripts/rename_channel_labels.py`` renames such a study's files once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NONE = "none"
DATASET = "dataset"
SYMBOLS = (NONE, DATASET)

#: Regular expressions for the wildcards, used by the Snakefile's ``wildcard_constraints``.
WILDCARD_PATTERNS = {
    "model": r"[a-z][a-z0-9_]*",
    "mean": r"none|dataset|[-+0-9.e]+(_[-+0-9.e]+)*",
    "std": r"none|dataset|[-+0-9.e]+(_[-+0-9.e]+)*",
    "seed": r"[0-9]+",
    "weight": r"[-+0-9.e]+",
    "bias": r"[-+0-9.e]+",
    "datakey": r"[0-9a-f]{10}",
    "pack": r"[0-9a-f]{10}",
}


def data_key(block: Mapping[str, Any], images: bool) -> str:
    """The name of a model's data folder under results/: a hash of what the data check and the
    statistics are made from (the data folder and, for images, the size). Another folder or size
    is another key, so its files are new files and every cell sees the change; allowing a
    download is not part of it (it changes no number)."""
    import hashlib
    import json

    image = block.get("image") if images else None
    if image is not None:  # the pixels: not how many images a shard holds
        image = {k: v for k, v in image.items() if k != "shard_size"}
    basis = {"data": str(block["data"]), "image": image}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:10]


#: The layout, in one place. Each study (the config's ``study`` name) has its own folders,
#: so the demo and the full study never mix their cells.
RESULTS = "results/{study}"
LOGS = "logs/{study}"
CELL_RESULT = "{model}/cells/mean~{mean}/std~{std}/seed~{seed}.json"  # under RESULTS
CELL_LOG = "{model}/train/mean~{mean}/std~{std}/seed~{seed}.log"  # under LOGS
CELL_CHECKPOINT = "{model}/checkpoints/mean~{mean}/std~{std}/seed~{seed}.pt"  # under RESULTS
#: The init study: conv1's initial weights and biases scaled, at one fixed (mean, std).
INIT_RESULT = "{model}/init/weight~{weight}/bias~{bias}/seed~{seed}.json"  # under RESULTS
INIT_LOG = "{model}/init/weight~{weight}/bias~{bias}/seed~{seed}.log"  # under LOGS
INIT_CHECKPOINT = "{model}/init-checkpoints/weight~{weight}/bias~{bias}/seed~{seed}.pt"  # under RESULTS
#: Packs: many cells of one model and seed trained at once (normsweep.training.members.stacked, normsweep.training.members.separate, normsweep.training.members.eval_only). The pack's own file
#: lists its members' results; each member still writes its own CELL_RESULT and CELL_LOG.
PACK_RESULT = "{model}/packs/seed~{seed}/pack~{pack}.json"  # under RESULTS
PACK_LOG = "{model}/packs/seed~{seed}/pack~{pack}.log"  # under LOGS
PACK_CHECKPOINT = "{model}/checkpoints/packs/seed~{seed}/pack~{pack}.pt"  # under RESULTS


def checkpoint_of(result_path: str) -> str:
    """A cell's checkpoint path from its result path (CELL_RESULT -> CELL_CHECKPOINT): what a
    training job needs beside its output, without a per-job param (10,000 cells plan faster)."""
    head, sep, tail = str(result_path).rpartition("/cells/")
    if not sep or not tail.endswith(".json"):
        raise ValueError(f"{result_path}: not a cell result path ({CELL_RESULT})")
    return f"{head}/checkpoints/{tail[: -len('.json')]}.pt"


def results_dir(study: str) -> str:
    return RESULTS.format(study=study)


def logs_dir(study: str) -> str:
    return LOGS.format(study=study)


#: Significant digits kept in a cell name; the name is the value the cell trains with.
DIGITS = 6
#: Joins the values of the channels in a name (see the module's docstring: never a comma).
CHANNEL_SEP = "_"
#: How older versions joined them; still read, renamed by scripts/rename_channel_labels.py.
OLD_CHANNEL_SEP = ","


def format_value(value: float | Sequence[float] | str | None) -> str:
    """The wildcard text of a mean or std: ``none``, ``dataset``, ``0.1307`` or ``0.485_0.456_0.406``."""
    if value is None:
        return NONE
    if isinstance(value, str):
        if value in SYMBOLS:
            return value
        return format_value(parse_value(value))
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [format_value(float(v)) for v in value]
        if len(set(parts)) == 1:  # equal channels: one number stands for all
            return parts[0]
        return CHANNEL_SEP.join(parts)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a normalization value must be finite, got {value!r}")
    text = f"{value:.{DIGITS}g}"
    if text in ("-0", "+0"):
        text = "0"
    return text


def parse_value(text: str) -> float | tuple[float, ...] | str | None:
    """Inverse of :func:`format_value`: ``None`` for ``none``, ``"dataset"`` kept as is."""
    if text == NONE:
        return None
    if text == DATASET:
        return DATASET
    try:
        values = tuple(float(part) for part in text.replace(OLD_CHANNEL_SEP, CHANNEL_SEP).split(CHANNEL_SEP))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a normalization value: expected a number, numbers joined by "
            f"'{CHANNEL_SEP}' (one per channel), '{NONE}' or '{DATASET}'"
        ) from None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True, order=True)
class Cell:
    """One training job: a model, a normalization (mean, std) and a seed."""

    model: str
    mean: str
    std: str
    seed: int

    @property
    def wildcards(self) -> dict[str, Any]:
        return {"model": self.model, "mean": self.mean, "std": self.std, "seed": self.seed}

    def result_path(self, study: str) -> str:
        return f"{results_dir(study)}/{CELL_RESULT.format(**self.wildcards)}"

    def checkpoint_path(self, study: str) -> str:
        return f"{results_dir(study)}/{CELL_CHECKPOINT.format(**self.wildcards)}"

    def log_path(self, study: str) -> str:
        return f"{logs_dir(study)}/{CELL_LOG.format(**self.wildcards)}"


def make_cell(model: str, mean: Any, std: Any, seed: int) -> Cell:
    """A cell with canonical names; ``none`` and ``dataset`` must be given for both axes."""
    mean_text, std_text = format_value(mean), format_value(std)
    for symbol in SYMBOLS:
        if (mean_text == symbol) != (std_text == symbol):
            raise ValueError(
                f"mean={mean_text!r}, std={std_text!r}: '{symbol}' stands for both the mean "
                f"and the std; give it for both or for neither"
            )
    if std_text not in SYMBOLS:
        std_values = parse_value(std_text)
        stds = std_values if isinstance(std_values, tuple) else (std_values,)
        if any(s <= 0 for s in stds):  # type: ignore[operator]
            raise ValueError(f"std={std_text!r}: a std must be > 0")
    return Cell(model=model, mean=mean_text, std=std_text, seed=int(seed))


def axis_values(spec: Mapping[str, Any] | Sequence[float], spacing: str) -> list[float]:
    """Values of one grid axis: an explicit list, or ``{start, stop, num}`` spaced linearly
    (``spacing="linear"``, the mean axis) or geometrically (``spacing="log"``, the std axis)."""
    if isinstance(spec, Mapping):
        start, stop, num = float(spec["start"]), float(spec["stop"]), int(spec["num"])
        if spacing == "log":
            return [float(v) for v in np.geomspace(start, stop, num)]
        return [float(v) for v in np.linspace(start, stop, num)]
    return [float(v) for v in spec]


def grid_cells(model: str, grid: Mapping[str, Any], seeds: Iterable[int]) -> list[Cell]:
    """The mean x std x seed cells of one model's grid, in a stable order."""
    means = axis_values(grid["mean"], "linear")
    stds = axis_values(grid["std"], "log")
    cells = {make_cell(model, m, s, seed) for m in means for s in stds for seed in seeds}
    return sorted(cells, key=_sort_key)


def reference_cells(model: str, references: Mapping[str, Any], seeds: Iterable[int]) -> dict[str, list[Cell]]:
    """Named reference cells: ``none``, ``dataset`` or ``{mean: .., std: ..}``."""
    named: dict[str, list[Cell]] = {}
    for name, ref in references.items():
        if ref in SYMBOLS:
            mean = std = ref
        else:
            mean, std = ref["mean"], ref["std"]
        named[name] = [make_cell(model, mean, std, seed) for seed in seeds]
    return named


def _sort_key(cell: Cell) -> tuple:
    def key(text: str) -> tuple:
        value = parse_value(text)
        if value is None or isinstance(value, str):
            return (0, text)
        return (1, value if isinstance(value, tuple) else (value,))

    return (cell.model, key(cell.mean), key(cell.std), cell.seed)


def study_cells(model: str, model_config: Mapping[str, Any]) -> list[Cell]:
    """Every cell of one model: the grid plus its reference cells, without duplicates."""
    seeds = model_config["seeds"]
    cells = set(grid_cells(model, model_config["grid"], seeds)) if model_config.get("grid") else set()
    for ref_cells in reference_cells(model, model_config.get("references", {}), seeds).values():
        cells.update(ref_cells)
    return sorted(cells, key=_sort_key)


def cell_roles(model: str, model_config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What each configured cell of a model is for: 'mean|std' -> {grid: bool, reference: name}."""
    roles: dict[str, dict[str, Any]] = {}
    for c in grid_cells(model, model_config["grid"], [0]) if model_config.get("grid") else []:
        roles[f"{c.mean}|{c.std}"] = {"grid": True, "reference": ""}
    baseline = model_config.get("baseline")
    for name, named in reference_cells(model, model_config.get("references", {}), [0]).items():
        role = roles.setdefault(f"{named[0].mean}|{named[0].std}", {"grid": False, "reference": ""})
        role.setdefault("names", []).append(name)
        # one cell under several names (a pretrained model's `own` is ImageNet's values): the
        # baseline's name if it is one of them, else the last
        if role["reference"] != baseline:
            role["reference"] = name
    return roles


def init_cells(model: str, init_study: Mapping[str, Any], seeds: Iterable[int]) -> list[dict[str, Any]]:
    """Wildcards of the init study's cells: weight x bias factors (both spaced geometrically)."""
    weights = axis_values(init_study["weight"], "log")
    biases = axis_values(init_study["bias"], "log")
    return [
        {"model": model, "weight": format_value(w), "bias": format_value(b), "seed": int(seed)}
        for w in weights
        for b in biases
        for seed in seeds
    ]


@dataclass(frozen=True)
class Pack:
    """Cells of one model and seed trained together; named by a hash of its members, so the
    same cells still to do make the same pack (and find its checkpoint) in every run."""

    model: str
    seed: int
    cells: tuple[Cell, ...]

    @property
    def id(self) -> str:
        import hashlib

        names = "\n".join(f"{c.mean}/{c.std}" for c in self.cells)
        return hashlib.sha256(f"{self.model}\n{self.seed}\n{names}".encode()).hexdigest()[:10]

    @property
    def wildcards(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "pack": self.id}

    def result_path(self, study: str) -> str:
        return f"{results_dir(study)}/{PACK_RESULT.format(**self.wildcards)}"


def plan_packs(cells: Iterable[Cell], size: int, study: str, done: Any = None) -> list[Pack]:
    """The cells still to do (no result file: ``done(path)`` is False; default: the file exists)
    in packs of at most ``size``, per model and seed, in the order given. Finished cells are in
    no pack, so a pack never holds (nor overwrites) a finished cell."""

    done = done or os.path.exists
    todo: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        if not done(cell.result_path(study)):
            todo.setdefault((cell.model, cell.seed), []).append(cell)
    packs = []
    for (model, seed), group in todo.items():
        n = -(-len(group) // size)  # as many packs as needed, sizes as equal as possible
        for i in range(n):
            packs.append(Pack(model, seed, tuple(group[i::n])))
    return packs


def study_packs(model: str, block: Mapping[str, Any], size: int, study: str, done: Any = None) -> list[Pack]:
    """The packs the workflow runs for ``model`` (``block``: its config): the configured cells
    still to do in packs of ``size``, none when ``size`` is 1. The workflow and the status plan
    with this one function, so that both name a pack alike; refinement trials and retrained
    seeds are never in these packs (a round has a pack of its own)."""
    return plan_packs(study_cells(model, block), size, study, done) if size > 1 else []


def read_packs(study: str, model: str) -> list[Pack]:
    """The packs that have run for ``model`` (their files under results/), so that the cells they
    made keep their pack as their maker in later runs, whatever ``cluster.pack`` is then."""
    import json
    from pathlib import Path

    packs = []
    for path in sorted(Path(results_dir(study), model, "packs").glob("seed~*/pack~*.json")):
        try:
            record = json.loads(path.read_text())
            found = Pack(
                model,
                int(record["seed"]),
                tuple(Cell(model, m, s, int(record["seed"])) for m, s in record["members"]),
            )
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: its cells count as made alone (and rerun if their files are gone)
        if path.name == f"pack~{found.id}.json":
            packs.append(found)
    return packs


def rounds(n_trials: int, batch: int) -> list[int]:
    """The sizes of the Optuna rounds that ask for ``n_trials`` trials ``batch`` at a time."""
    return [min(batch, n_trials - start) for start in range(0, n_trials, batch)]


#: A per-channel label written by older versions: numbers joined by commas.
_OLD_LABEL = r"[-+0-9.e]+(?:,[-+0-9.e]+)+"


def old_channel_names(study: str, base: str | Path = ".", models: Iterable[str] | None = None) -> list[Path]:
    """The files and folders of ``study`` (under results/ and logs/; of ``models`` only, when
    given) whose names still join channels by commas (older versions): the workflow stops on
    them, naming the renaming script. Lists folders only down to the cells' ``std~`` level."""
    import re

    pattern = re.compile(rf"^(mean|std)~{_OLD_LABEL}$")
    found: list[Path] = []
    for top in (Path(base) / results_dir(study), Path(base) / logs_dir(study)):
        for model, kind in [
            (m, k) for m in (["*"] if models is None else models) for k in ("cells", "train", "checkpoints")
        ]:
            for mean_dir in top.glob(f"{model}/{kind}/mean~*"):
                if pattern.match(mean_dir.name):
                    found.append(mean_dir)
                    continue
                found += [d for d in mean_dir.glob("std~*") if pattern.match(d.name)]
    return sorted(found)
