"""Statistics and comparisons over the cells table: the best and worst grid cells, the
references, the spread across seeds, the speed metrics, the noise (which cells differ from the
baseline, with the test each comparison used) and the published top-1 beside the measured one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from normsweep.analysis.statistics import MCNEMAR, METHOD, MIXED, compare_cells, compare_metric
from normsweep.analysis.table import DEFAULT_CONVERGENCE, per_cell, ranked
from normsweep.core.results import STATUS_DIVERGED


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
            compare_cells(rows, entry["baseline"], correct=kept), entry["baseline"]
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
        heads = rows["head"].value_counts().to_dict() if "head" in rows else {}
        entry["heads"] = {str(k): int(v) for k, v in heads.items() if k}
        if trained and "epochs_to_threshold" in rows.columns:  # an evaluation-only model learns nothing
            levels = {**DEFAULT_CONVERGENCE, **(convergence or {}).get(str(model), {})}
            entry["speed"] = speed_summary(str(model), rows, entry["baseline"], levels)
        summary[str(model)] = entry
    return summary


#: Grid cells by the sign of their inputs (pixels in [0, 1], so (x - μ) / σ >= 0 for μ <= 0).
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


def noise_summary(stats: pd.DataFrame, baseline: str | None) -> dict[str, Any]:
    """Which cells differ from the baseline beyond seed noise (see :mod:`normsweep.analysis.statistics`), and
    how many comparisons used each test (McNemar where both cells kept per-image predictions,
    Welch over seeds otherwise)."""
    tested = stats[stats["p_value"].notna()]
    differ = tested[tested["differs"]].sort_values("diff_vs_baseline", ascending=False)
    tests = {str(k): int(v) for k, v in tested["test"].value_counts().items()} if "test" in tested else {}
    method = MIXED if len(tests) > 1 else MCNEMAR if "McNemar" in tests else METHOD
    others = stats[stats["p_value"].isna() & stats["diff_vs_baseline"].notna()]
    return {
        "method": method,
        "tests": tests,
        "n_untested": int(len(others)),
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
