"""Cell results gathered into tidy tables.

- cells table: one row per (model, mean, std, seed), with the convergence metrics;
- epochs table: one row per (model, mean, std, seed, epoch);
- per-cell aggregates over seeds, the ranking, the grid as a matrix (the heatmap's), and the
  per-image predictions kept by evaluation cells.

What the tables say is :mod:`normsweep.analysis.comparisons`; how it reads, :mod:`normsweep.analysis.summary`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from normsweep.core.results import STATUS_DIVERGED, CellResult, read_correct

CELL_KEYS = ["model", "mean_label", "std_label"]


def _scalar(values: list[float] | None) -> float:
    """A single mean/std for a table column: the value when all channels agree, else NaN."""
    if values is None:
        return math.nan
    return float(values[0]) if len(set(values)) == 1 else math.nan


#: How fast a cell learns, from its per-epoch test accuracy; the defaults of the
#: config's ``convergence`` block.
DEFAULT_CONVERGENCE = {"relative": 0.99, "absolute": None, "floor": None}
SPEED_METRICS = ("epoch1_accuracy", "epochs_to_threshold", "auc")
#: Classes of the data sets whose results did not record theirs (older results).
KNOWN_CLASSES = {"mnist": 10}


def chance_floor(levels: Mapping[str, Any], num_classes: int) -> float:
    """The accuracy below which no cell counts as reaching a threshold: the config's ``floor``,
    else twice chance (a cell stuck at chance, 1 / classes, has not learned; 0 when unknown)."""
    if levels.get("floor") is not None:
        return float(levels["floor"])
    return 2.0 / num_classes if num_classes else 0.0


def convergence_metrics(
    accuracies: list[float],
    status: str,
    level: float,
    relative: float = 0.99,
    absolute: float | None = None,
    floor: float = 0.0,
) -> dict[str, float]:
    """A cell's learning speed from its test accuracy after epochs 1, 2, ...:

    - ``epoch1_accuracy``: after the first epoch;
    - ``epochs_to_threshold``: the first epoch reaching ``level`` (the study's threshold: a
      fraction of the best cell's final accuracy, or an absolute accuracy);
    - ``epochs_to_relative``: the first epoch reaching ``relative`` x the cell's own final accuracy;
    - ``epochs_to_absolute``: the first epoch reaching ``absolute`` (NaN: no level set);
    - ``auc``: the area under the accuracy curve per epoch (the mean over epochs 1..N), which
      rewards reaching a level early.

    No epoch counts as reaching anything below ``floor`` (a cell stuck at chance is not the
    fastest: it never reaches); never is NaN. A diverged or an evaluation-only cell (no trained
    epoch) has none of them."""
    nan = math.nan
    names = ("epoch1_accuracy", "epochs_to_relative", "epochs_to_absolute", "epochs_to_threshold", "auc")
    out = dict.fromkeys(names, nan)
    if status == STATUS_DIVERGED or not accuracies or not all(math.isfinite(a) for a in accuracies):
        return out

    def first_epoch(at_least: float) -> float:
        return float(next((e for e, a in enumerate(accuracies, 1) if a >= max(at_least, floor)), nan))

    out["epoch1_accuracy"] = accuracies[0]
    out["auc"] = float(np.mean(accuracies))
    out["epochs_to_relative"] = first_epoch(relative * accuracies[-1]) if accuracies[-1] >= floor else nan
    if absolute is not None:
        out["epochs_to_absolute"] = first_epoch(absolute)
    out["epochs_to_threshold"] = first_epoch(level)
    return out


def threshold_level(results: list[CellResult], levels: Mapping[str, Any]) -> float:
    """The accuracy of 'epochs to the threshold' for one model's results: ``absolute`` when set,
    else ``relative`` x the best final accuracy among its cells (mean over each cell's seeds;
    cells with a diverged seed are not candidates)."""
    if levels.get("absolute") is not None:
        return float(levels["absolute"])
    finals: dict[tuple[str, str], list[float]] = {}
    for r in results:
        finals.setdefault((r.mean_label, r.std_label), []).append(
            r.final_accuracy if r.status != STATUS_DIVERGED else math.nan
        )
    means = [float(np.mean(v)) for v in finals.values() if all(math.isfinite(x) for x in v)]
    if not means:  # every cell has a diverged seed: the best of the seeds that finished
        means = [float(np.nanmean(v)) for v in finals.values() if any(math.isfinite(x) for x in v)]
    return float(levels["relative"]) * max(means) if means else math.nan


def cells_table(
    results: Iterable[CellResult],
    roles: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    convergence: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per cell and seed; ``roles`` (model -> :func:`normsweep.core.cells.cell_roles`) says which cells are
    on the grid and which are named references; ``convergence`` (model -> {relative, absolute, floor})
    the thresholds of the learning-speed metrics (:func:`convergence_metrics`)."""
    results = list(results)
    by_model: dict[str, list[CellResult]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    levels = {m: {**DEFAULT_CONVERGENCE, **(convergence or {}).get(m, {})} for m in by_model}
    level = {m: threshold_level(rs, levels[m]) for m, rs in by_model.items()}
    rows = []
    for r in results:
        role = (roles or {}).get(r.model, {}).get(f"{r.mean_label}|{r.std_label}", {})
        speed = convergence_metrics(
            [e.test_accuracy for e in r.epochs if e.epoch > 0],
            r.status,
            level[r.model],
            levels[r.model]["relative"],
            levels[r.model]["absolute"],
            chance_floor(levels[r.model], r.num_classes or KNOWN_CLASSES.get(r.dataset, 0)),
        )
        reference = role.get("reference", "")
        rows.append(
            {
                "model": r.model,
                "dataset": r.dataset,
                "mean_label": r.mean_label,
                "std_label": r.std_label,
                "mean": _scalar(r.mean),
                "std": _scalar(r.std),
                "channel_means": json.dumps(r.mean),
                "channel_stds": json.dumps(r.std),
                "reference": reference,
                # every name of the cell (a pretrained model's `own` may be ImageNet's values too)
                "reference_names": ", ".join(role.get("names", [reference] if reference else [])),
                "is_grid": bool(role.get("grid", False)),
                "seed": r.seed,
                "status": r.status,
                "final_accuracy": r.final_accuracy,
                "best_accuracy": r.best_accuracy,
                **speed,
                "threshold_level": level[r.model],
                "epochs_requested": r.epochs_requested,
                "epochs_run": sum(1 for e in r.epochs if e.epoch > 0),
                "final_train_loss": r.epochs[-1].train_loss if r.epochs else math.nan,
                "n_train": r.n_train,
                "n_test": r.n_test,
                "num_classes": r.num_classes,
                "arch": r.arch or r.model,
                "weights": r.weights,
                "head": r.head,  # normsweep.data.classes: new, mapped, kept, replaced ("": not recorded)
                "predict_over": r.predict_over,
                "batch_size": r.batch_size,
                "lr": r.lr,
                "wall_seconds": r.wall_seconds,
                "device": r.device,
                "device_name": r.device_name,
                "torch_version": r.versions.get("torch", ""),
                "pack": r.pack,
                "pack_size": r.pack_size,
                "data_version": r.data_version,  # normsweep.core.provenance ("": not recorded)
                "train_left_out": r.train_left_out,
                "code": r.versions.get("code", ""),
                "commit": r.versions.get("commit", ""),
                # what makes numbers comparable: packages and the package's code (not the
                # commit, which also moves when only the docs change)
                "versions": json.dumps(
                    {k: v for k, v in r.versions.items() if k != "commit"}, sort_keys=True
                ),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["model", "mean", "std", "mean_label", "std_label", "seed"]).reset_index(
        drop=True
    )


def init_frame(results: Iterable[CellResult]) -> pd.DataFrame:
    """The init study: one row per (weight factor, bias factor, seed)."""
    return pd.DataFrame(
        [
            {
                "model": r.model,
                "mean": r.mean_label,
                "std": r.std_label,
                "init_weight": r.init_weight,
                "init_bias": r.init_bias,
                "seed": r.seed,
                "status": r.status,
                "final_accuracy": r.final_accuracy,
                "epochs": r.epochs_requested,
                "n_train": r.n_train,
            }
            for r in results
        ]
    )


def epochs_table(results: Iterable[CellResult]) -> pd.DataFrame:
    rows = [
        {
            "model": r.model,
            "mean_label": r.mean_label,
            "std_label": r.std_label,
            "seed": r.seed,
            "status": r.status,
            **vars(e),
        }
        for r in results
        for e in r.epochs
    ]
    return pd.DataFrame(rows)


def per_cell(table: pd.DataFrame) -> pd.DataFrame:
    """Seeds folded: mean, std and count of the final accuracy for every cell."""
    if "reference_names" not in table.columns:  # tables made before cells had several names
        table = table.assign(reference_names=table["reference"])
    grouped = table.groupby(CELL_KEYS, sort=False, dropna=False)
    out = grouped.agg(
        mean=("mean", "first"),
        std=("std", "first"),
        channel_means=("channel_means", "first"),
        channel_stds=("channel_stds", "first"),
        reference=("reference", "first"),
        reference_names=("reference_names", "first"),
        is_grid=("is_grid", "first"),
        accuracy=("final_accuracy", "mean"),
        accuracy_sd=("final_accuracy", "std"),
        n_seeds=("seed", "count"),
        n_diverged=("status", lambda s: int((s == STATUS_DIVERGED).sum())),
        n_missing=("final_accuracy", lambda v: int(v.isna().sum())),
    ).reset_index()
    # seeds without a value that did not diverge: for a speed metric, the seeds that never reach
    out["n_never"] = out["n_missing"] - out["n_diverged"]
    return out.drop(columns="n_missing")


def ranked(cell: pd.DataFrame) -> pd.DataFrame:
    """The grid cells that can be ranked: every seed finished (a cell where 2 of 3 seeds
    diverged is not the best cell on the strength of its third)."""
    return cell[cell["is_grid"] & (cell["n_diverged"] == 0)].dropna(subset=["accuracy"])


def kept_predictions(
    results: Sequence[CellResult], paths: Sequence[str | Path]
) -> dict[str, dict[tuple[str, str, int], np.ndarray]]:
    """model -> (mean label, std label, seed) -> which test images the cell got right, for the
    models whose every cell is an evaluation cell that kept its predictions (beside its result:
    normsweep.core.results.predictions_path); a model with trained cells is compared over seeds."""
    kept: dict[str, dict[tuple[str, str, int], np.ndarray]] = {}
    trained = {r.model for r in results if r.epochs_requested > 0}
    versions: dict[str, set[str]] = {}
    for r in results:
        versions.setdefault(r.model, set()).add(r.data_version)
    # predictions are paired image by image: never across two versions of the data
    trained |= {model for model, seen in versions.items() if len(seen) > 1}
    for result, path in zip(results, paths, strict=True):
        if result.model in trained:
            continue
        correct = read_correct(path)
        if correct is not None:
            kept.setdefault(result.model, {})[(result.mean_label, result.std_label, result.seed)] = correct
    return kept


def grid_matrix(cell: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid cells as a (std x mean) matrix of mean accuracy, for the heatmap."""
    grid = cell[cell["is_grid"]].dropna(subset=["mean", "std"])
    means = np.sort(grid["mean"].unique())
    stds = np.sort(grid["std"].unique())
    matrix = np.full((len(stds), len(means)), np.nan)
    for _, row in grid.iterrows():
        matrix[np.searchsorted(stds, row["std"]), np.searchsorted(means, row["mean"])] = row["accuracy"]
    return means, stds, matrix
