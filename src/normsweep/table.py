"""Cell results gathered into tidy tables and a summary.

- cells table: one row per (model, mean, std, seed);
- epochs table: one row per (model, mean, std, seed, epoch);
- summary: best and worst grid cells, the reference cells, the spread across seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .noise import MCNEMAR, METHOD, compare_cells, compare_metric
from .results import STATUS_DIVERGED, CellResult, ResultError, read_correct, read_result, result_files

CELL_KEYS = ["model", "mean_label", "std_label"]


def _scalar(values: list[float] | None) -> float:
    """A single mean/std for a table column: the value when all channels agree, else NaN."""
    if values is None:
        return math.nan
    return float(values[0]) if len(set(values)) == 1 else math.nan


#: How fast a cell learns, from its per-epoch test accuracy (issue 14); the defaults of the
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
    """One row per cell and seed; ``roles`` (model -> :func:`normsweep.cells.cell_roles`) says which cells are
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
                "batch_size": r.batch_size,
                "lr": r.lr,
                "wall_seconds": r.wall_seconds,
                "device": r.device,
                "device_name": r.device_name,
                "torch_version": r.versions.get("torch", ""),
                "pack": r.pack,
                "pack_size": r.pack_size,
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


def summarize(
    table: pd.DataFrame,
    baseline: Mapping[str, str] | None = None,
    convergence: Mapping[str, Mapping[str, Any]] | None = None,
    correct: Mapping[str, Mapping[tuple[str, str, int], np.ndarray]] | None = None,
    published: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Per model: best and worst grid cells, references, spread across seeds and cells;
    ``correct`` (model -> the evaluation cells' per-image results) compares them by McNemar;
    ``published`` (model -> its weights' Preprocessing dict) puts the published top-1 beside
    the cell measured at the weights' own normalization."""
    summary: dict[str, Any] = {}
    for model, rows in table.groupby("model"):
        cell = per_cell(rows)
        grid = ranked(cell)
        trained = bool((rows["epochs_requested"] > 0).any())
        entry: dict[str, Any] = {
            "n_results": int(len(rows)),
            "n_cells": int(len(cell)),
            "n_grid_cells": int(cell["is_grid"].sum()),
            "seeds": sorted(int(s) for s in rows["seed"].unique()),
            "n_diverged": int((rows["status"] == STATUS_DIVERGED).sum()),
            "epochs": sorted(int(e) for e in rows["epochs_requested"].unique()),
            "n_train": sorted(int(n) for n in rows["n_train"].unique()),
            "evaluation_only": not trained,
            # grid cells with a diverged seed (not all): not ranked, listed with their count
            "partly_diverged": [
                {
                    "mean": r["mean_label"],
                    "std": r["std_label"],
                    "n_diverged": int(r["n_diverged"]),
                    "n_seeds": int(r["n_seeds"]),
                }
                for _, r in cell[cell["is_grid"] & (cell["n_diverged"] > 0)].iterrows()
                if r["n_diverged"] < r["n_seeds"]
            ],  # fmt: skip
        }
        if not grid.empty:
            best = grid.loc[grid["accuracy"].idxmax()]
            worst = grid.loc[grid["accuracy"].idxmin()]
            entry["best"] = _cell_entry(best)
            entry["worst"] = _cell_entry(worst)
            entry["grid_accuracy_sd_across_cells"] = _float(grid["accuracy"].std(ddof=0))
            entry["grid_accuracy_mean"] = _float(grid["accuracy"].mean())
        refs = cell[cell["reference"] != ""]
        entry["references"] = {
            name: _cell_entry(r)
            for _, r in refs.iterrows()
            for name in str(r.get("reference_names") or r["reference"]).split(", ")
        }
        entry["baseline"] = (baseline or {}).get(str(model))
        seed_sd = cell["accuracy_sd"].dropna()
        entry["seed_sd_mean"] = _float(seed_sd.mean()) if len(seed_sd) else None
        entry["seed_sd_max"] = _float(seed_sd.max()) if len(seed_sd) else None
        kept = (correct or {}).get(str(model))
        entry["noise"] = noise_summary(
            compare_cells(rows, entry["baseline"], correct=kept),
            entry["baseline"],
            MCNEMAR if kept else METHOD,
        )
        entry["published"] = published_entry(
            (published or {}).get(str(model)), entry["references"], int(rows["n_test"].max()),
            int(rows["num_classes"].max()) if "num_classes" in rows else 0,
        )  # fmt: skip
        versions = sorted(rows["versions"].unique())
        entry["versions"] = [json.loads(v) for v in versions]
        entry["mixed_versions"] = len(versions) > 1
        codes = rows.groupby("code")["commit"].agg(lambda c: sorted(set(c) - {""}))
        entry["code_versions"] = {str(code): list(commits) for code, commits in codes.items()}
        entry["mixed_code"] = len(codes) > 1
        # cells trained in packs and alone differ like runs on another thread count (rounding
        # in batched kernels, then chaotic early training): comparing the two is comparing modes
        modes = {"pack": int((rows["pack_size"] > 1).sum()), "alone": int((rows["pack_size"] <= 1).sum())}
        entry["training_modes"] = modes
        entry["mixed_modes"] = bool(modes["pack"] and modes["alone"])
        if trained and "epochs_to_threshold" in rows.columns:  # an evaluation-only model learns nothing
            levels = {**DEFAULT_CONVERGENCE, **(convergence or {}).get(str(model), {})}
            entry["speed"] = speed_summary(str(model), rows, entry["baseline"], levels)
        summary[str(model)] = entry
    return summary


#: Grid cells by the sign of their inputs (pixels in [0, 1], so (x - μ) / σ >= 0 for μ <= 0).
INPUT_SIGNS = (
    ("both signs", "inputs of both signs (0 < μ < 1)", lambda m: 0 < m < 1),
    ("all >= 0", "inputs all ≥ 0 (μ ≤ 0)", lambda m: m <= 0),
    ("all <= 0", "inputs all ≤ 0 (μ ≥ 1)", lambda m: m >= 1),
)


def threshold_text(levels: Mapping[str, Any], level: float | None = None) -> str:
    """The threshold of 'epochs to the threshold', as people read it (with its accuracy when
    ``level`` is known)."""
    levels = {**DEFAULT_CONVERGENCE, **levels}
    if levels.get("absolute") is not None:
        return f"{levels['absolute']:g} test accuracy"
    value = "" if level is None or not math.isfinite(level) else f" = {level:.4f}"
    return f"{levels['relative']:.0%} of the best cell's final accuracy{value}"


def speed_summary(
    model: str, rows: pd.DataFrame, baseline: str | None, levels: Mapping[str, Any]
) -> dict[str, Any]:
    """How fast the grid cells learn, by the sign of their inputs (LeCun's claim: centred
    inputs learn faster), and which cells learn measurably faster or slower than the baseline;
    with the answer in one sentence."""
    threshold = threshold_text(levels, float(rows["threshold_level"].iloc[0]) if len(rows) else None)
    grid = rows[rows["is_grid"]]
    # seed runs that trained on and never reached the threshold
    grid = grid.assign(never=grid["epochs_to_threshold"].isna() & (grid["status"] != STATUS_DIVERGED))
    seeds = grid.groupby(["mean_label", "std_label"]).agg(
        mean=("mean", "first"),
        epochs=("epochs_to_threshold", "mean"),
        first=("epoch1_accuracy", "mean"),
        diverged=("status", lambda s: bool((s == STATUS_DIVERGED).all())),
        never=("never", "sum"),
    )
    groups = {}
    for key, label, test in INPUT_SIGNS if len(seeds) else ():
        part = seeds[[bool(test(m)) for m in seeds["mean"]]]
        part = part[~part["diverged"]]
        if part.empty:
            continue
        reached = part["epochs"].dropna()
        groups[key] = {
            "label": label,
            "cells": int(len(part)),
            "reached": int(len(reached)),
            "seeds_never": int(part["never"].sum()),
            "median_epochs": _float(reached.median()) if len(reached) else None,
            "median_epoch1_accuracy": _float(part["first"].median()),
        }
    stats = compare_metric(rows, baseline, "epochs_to_threshold")
    tested = stats[stats["epochs_to_threshold_differs"].fillna(False).astype(bool)]
    faster = int((tested["epochs_to_threshold_diff"] < 0).sum())
    slower = int((tested["epochs_to_threshold_diff"] > 0).sum())
    parts = []
    for g in groups.values():
        if g["median_epochs"] is None:
            when = f"none of its {g['cells']} cells"
        else:
            never = (
                ""
                if g["reached"] == g["cells"]
                else f"; {g['cells'] - g['reached']} of {g['cells']} cells never"
            )
            when = f"{g['median_epochs']:g} epochs{never}"
        if g["seeds_never"] > g["cells"] - g["reached"]:  # also seeds of cells that do reach it
            when += f"; {g['seeds_never']} seed run(s) in all never reach it"
        first = g["median_epoch1_accuracy"]
        parts.append(f"{g['label']}: {when}" + ("" if first is None else f" (epoch-1 accuracy {first:.4f})"))
    sentence = (
        f"{model}, epochs to reach {threshold} (median over the grid cells that reach it): "
        + "; ".join(parts)
        + "."
        if parts
        else ""
    )
    if baseline and stats["epochs_to_threshold_p"].notna().any():
        sentence += (
            f" Against the baseline '{baseline}' ({METHOD}, on epochs to the threshold): {faster} cells learn "
            f"measurably faster, {slower} slower."
        )
    elif sentence:
        sentence += " (One seed per cell: no test against the baseline.)"
    return {"threshold": threshold, "groups": groups, "faster": faster, "slower": slower, "answer": sentence}


def published_entry(
    own: Mapping[str, Any] | None, references: Mapping[str, Any], n_test: int = 0, num_classes: int = 0
) -> dict[str, Any] | None:
    """The weights' published top-1 beside the cell measured at their own normalization (on
    ``n_test`` images of ``num_classes`` classes: comparable on ImageNet's 50,000 val images)."""
    if not own or own.get("published_top1") is None:
        return None
    measured = references.get("own", {}).get("accuracy")
    return {
        "source": own["source"],
        "top1": own["published_top1"],
        "measured_own": measured,
        "difference": None if measured is None else measured - own["published_top1"],
        "n_test": n_test,
        "num_classes": num_classes,
        "comparable": n_test == 50_000 and num_classes == 1000,
    }


def noise_summary(stats: pd.DataFrame, baseline: str | None, method: str = METHOD) -> dict[str, Any]:
    """Which cells differ from the baseline beyond seed noise (see :mod:`normsweep.noise`)."""
    tested = stats[stats["p_value"].notna()]
    differ = tested[tested["differs"]].sort_values("diff_vs_baseline", ascending=False)
    return {
        "method": method,
        "baseline": baseline,
        "n_compared": int(len(tested)),
        "n_differ": int(len(differ)),
        "differ": [
            {
                "mean": r["mean_label"],
                "std": r["std_label"],
                "diff": _float(r["diff_vs_baseline"]),
                "p_adjusted": _float(r["p_adjusted"]),
            }
            for _, r in differ.iterrows()
        ],
        "note": None if len(tested) else "fewer than two seeds per cell (or no baseline): nothing to test",
    }


def _float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _cell_entry(row: pd.Series) -> dict[str, Any]:
    return {
        "mean": row["mean_label"],
        "std": row["std_label"],
        "mean_value": _float(row["mean"]),
        "std_value": _float(row["std"]),
        "accuracy": _float(row["accuracy"]),
        "accuracy_sd": _float(row["accuracy_sd"]) if row["n_seeds"] > 1 else None,
        "n_seeds": int(row["n_seeds"]),
        "n_diverged": int(row["n_diverged"]),
    }


def model_sentence(model: str, s: Mapping[str, Any]) -> str:
    """One sentence on a model: its accuracy at each reference and at the best grid cell, and
    which of them differ from the baseline (the summary's test)."""
    named = [(name, c) for name, c in s.get("references", {}).items()]
    if s.get("best"):
        named.append(("the best grid cell", s["best"]))

    def accuracy(c: Mapping[str, Any]) -> str:
        return "diverged" if c["accuracy"] is None else f"{c['accuracy']:.4f}"

    def where(name: str, c: Mapping[str, Any]) -> str:
        if name == "own":
            return "its own normalization (own)"
        if name == "the best grid cell":
            return f"the best grid cell ({c['mean']}, {c['std']})"
        return f"{name} ({c['mean']}, {c['std']})" if c["mean"] not in ("none", name) else name

    text = f"{model}: " + "; ".join(f"{accuracy(c)} at {where(n, c)}" for n, c in named) + "."
    noise = s.get("noise") or {}
    if noise.get("n_compared"):
        differ = {(d["mean"], d["std"]) for d in noise["differ"]}
        names = [n for n, c in named if (c["mean"], c["std"]) in differ and n != noise["baseline"]]
        test = "McNemar" if noise["method"].startswith("McNemar") else "Welch"
        text += (
            f" Different from {noise['baseline']} ({test}, FDR 5%, {noise['n_differ']} of "
            f"{noise['n_compared']} cells): {', '.join(names) or 'none of these'}."
        )
    return text


def published_line(s: Mapping[str, Any]) -> str | None:
    p = s.get("published")
    if not p:
        return None
    measured = "not measured (no `own` cell)"
    if p["measured_own"] is not None:
        measured = f"{p['measured_own']:.4f} ({p['difference'] * 100:+.2f} points)"
    where = f"{p.get('n_test', 0):,} images of {p.get('num_classes', 0)} classes"
    caveat = (
        "ImageNet's val set: the published protocol"
        if p.get("comparable")
        else "not ImageNet's 50,000 val images of 1000 classes: not comparable"
    )
    return (
        f"Published ImageNet-1K top-1 of {p['source']}: {p['top1']:.4f}; measured here at its own "
        f"normalization: {measured}, on {where} ({caveat})."
    )


def study_summary_markdown(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The study in one sentence per model (from each model's summary.json)."""
    lines = ["# normsweep study summary", ""]
    for model, s in summaries.items():
        lines.append(f"- {model_sentence(model, s)}")
        if line := published_line(s):
            lines.append(f"  {line}")
    return "\n".join(lines) + "\n"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary for people."""
    lines = ["# normsweep summary", ""]
    for model, s in summary.items():
        lines += [f"## {model}", ""]
        if s.get("references") or s.get("best"):
            lines += [model_sentence(model, s), ""]
        if line := published_line(s):
            lines += [line, ""]
        lines.append(
            f"{s['n_results']} results in {s['n_cells']} cells ({s['n_grid_cells']} on the grid), "
            f"seeds {s['seeds']}, epochs {s['epochs']}, training images {s['n_train']}, "
            f"{s['n_diverged']} diverged."
        )
        lines.append("")
        if s.get("mixed_code"):
            lines += [
                "**Warning:** the cells of this table were made with different versions of the training "
                "code (normsweep source hash: git commits):",
                "",
            ]
            lines += [
                f"- `{code}`: {', '.join(commits) or 'no git checkout'}"
                for code, commits in s["code_versions"].items()
            ] + [""]
        if s.get("mixed_modes"):
            m = s["training_modes"]
            lines += [
                f"**Warning:** this table mixes cells trained in packs ({m['pack']} results) and cells trained "
                f"alone ({m['alone']}): the two modes round differently and early training amplifies it "
                "(measured: per-epoch accuracy up to 0.17 apart at a cell's take-off, as far as the same "
                "code on another thread count), so a difference between cells of the two modes is partly "
                "the mode. The `pack_size` column says which is which; retrain one group for a clean comparison.",
                "",
            ]
        if s.get("mixed_versions"):
            lines += [
                "**Warning:** the cells of this table were made with different package or code versions:",
                "",
            ]
            lines += [f"- `{json.dumps(v, sort_keys=True)}`" for v in s["versions"]] + [""]
        lines += [
            "| cell | mean | std | accuracy | sd over seeds | seeds | diverged seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = [("best grid cell", s.get("best")), ("worst grid cell", s.get("worst"))]
        rows += [(f"reference: {name}", ref) for name, ref in s["references"].items()]
        for label, c in rows:
            if c is None:
                continue
            sd = "" if c["accuracy_sd"] is None else f"{c['accuracy_sd']:.4f}"
            acc = "diverged" if c["accuracy"] is None else f"{c['accuracy']:.4f}"
            diverged = c.get("n_diverged", 0)
            lines.append(
                f"| {label} | {c['mean']} | {c['std']} | {acc} | {sd} | {c['n_seeds']} | {diverged} |"
            )
        lines.append("")
        if s.get("partly_diverged"):
            lines.append(
                "Not ranked, some seeds diverged: "
                + ", ".join(
                    f"({p['mean']}, {p['std']}) {p['n_diverged']} of {p['n_seeds']}"
                    for p in s["partly_diverged"]
                )
                + "."
            )
        if s.get("evaluation_only"):
            lines.append(
                "Evaluation only (epochs: 0): the networks were not trained, so there is no learning speed."
            )
        if s.get("grid_accuracy_sd_across_cells") is not None:
            lines.append(
                f"Across grid cells: mean accuracy {s['grid_accuracy_mean']:.4f}, "
                f"sd {s['grid_accuracy_sd_across_cells']:.4f}."
            )
        noise = s.get("noise")
        if noise and noise["n_compared"]:
            lines.append(
                f"Against the baseline '{noise['baseline']}' ({noise['method']}): "
                f"{noise['n_differ']} of {noise['n_compared']} cells differ "
                + ("beyond chance." if noise["method"].startswith("McNemar") else "beyond seed noise.")
            )
            lines += [
                f"- ({d['mean']}, {d['std']}): {d['diff'] * 100:+.2f} points, adjusted p = {d['p_adjusted']:.3g}"
                for d in noise["differ"]
            ]
        elif noise:
            lines.append(f"Seed noise: {noise['note']}.")
        if s.get("seed_sd_mean") is not None:
            lines.append(
                f"Across seeds of one cell: mean sd {s['seed_sd_mean']:.4f}, largest {s['seed_sd_max']:.4f}."
            )
        if s.get("speed", {}).get("answer"):
            lines += ["", "**How fast it learns.** " + s["speed"]["answer"]]
        lines.append("")
    return "\n".join(lines)


def write_tables(
    result_paths: Iterable[str | Path],
    roles: Mapping[str, Mapping[str, Mapping[str, Any]]],
    baseline: Mapping[str, str],
    out: Mapping[str, str | Path],
    convergence: Mapping[str, Mapping[str, Any]] | None = None,
    published: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Read the cell results and write cells/epochs tables (CSV + Parquet) and the summary."""
    results, unreadable, paths = [], [], []
    for path in result_files(result_paths):
        try:
            results.append(read_result(path))
            paths.append(path)
        except ResultError as error:
            unreadable.append((str(path), str(error)))
    if unreadable:
        listing = "\n".join(f"  {message}" for _, message in unreadable)
        raise ResultError(
            f"{len(unreadable)} cell result(s) cannot be read:\n{listing}\n"
            f"Delete them and rerun snakemake; it trains exactly these cells again:\n"
            f"  rm {' '.join(path for path, _ in unreadable)}"
        )
    cells = cells_table(results, roles, convergence)
    epochs = epochs_table(results)
    correct = kept_predictions(results, paths)
    summary = summarize(cells, baseline, convergence, correct, published)
    stats = pd.concat(
        [
            compare_cells(
                rows, (baseline or {}).get(str(model)), SPEED_METRICS, correct.get(str(model))
            ).assign(model=model)
            for model, rows in cells.groupby("model")
        ],
        ignore_index=True,
    )
    for name, frame in (("cells", cells), ("epochs", epochs), ("cell_stats", stats)):
        Path(out[f"{name}_csv"]).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out[f"{name}_csv"], index=False)
        frame.to_parquet(out[f"{name}_parquet"], index=False)
    Path(out["summary_json"]).write_text(json.dumps(summary, indent=2) + "\n")
    Path(out["summary_md"]).write_text(summary_markdown(summary))
    return summary


def kept_predictions(
    results: Sequence[CellResult], paths: Sequence[str | Path]
) -> dict[str, dict[tuple[str, str, int], np.ndarray]]:
    """model -> (mean label, std label, seed) -> which test images the cell got right, for the
    models whose every cell is an evaluation cell that kept its predictions (beside its result:
    normsweep.results.predictions_path); a model with trained cells is compared over seeds."""
    kept: dict[str, dict[tuple[str, str, int], np.ndarray]] = {}
    trained = {r.model for r in results if r.epochs_requested > 0}
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
