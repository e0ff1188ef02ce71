"""Figures for people: the accuracy heatmap over (mean, std), the distribution of cell
accuracies, and the learning curves of the reference cells."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from normsweep.analysis.heatmaps import (  # noqa: E402
    DEFAULT_STYLE,
    PERCENT,
    REFERENCE_STYLE,
    _edges,
    _where,
    heatmap,
    heatmap_panel,
)
from normsweep.analysis.table import per_cell, ranked  # noqa: E402


def trials_over_grid(cells: pd.DataFrame, trials: pd.DataFrame, model: str, path: str | Path) -> None:
    """The Optuna trials (from ``study.trials_dataframe()``) drawn over the grid's heatmap."""
    fig, ax = plt.subplots(figsize=(8.5, 7.2))
    heatmap_panel(ax, cells, model, fig)
    done = trials[trials["state"] == "COMPLETE"]
    source = done.get("user_attrs_source", pd.Series(index=done.index, dtype=object)).fillna("optuna")
    new = done[source != "grid"]
    if len(new):
        ax.scatter(
            new["params_mean"],
            new["params_std"],
            s=22,
            c="white",
            edgecolors="black",
            linewidths=0.6,
            zorder=8,
            label=f"Optuna trials ({len(new)})",
        )
    handles, _ = ax.get_legend_handles_labels()
    best = done["value"].max() if len(done) else math.nan
    tied = int(np.isclose(done["value"], best, rtol=0, atol=1e-9).sum()) if len(done) else 0
    if tied > 1:  # a star on one of them would be arbitrary (as on the heatmap)
        handles.append(matplotlib.lines.Line2D([], [], linestyle="none", label=(
            f"no best trial marked: {tied} trials tie at {best * PERCENT:.2f}%")))  # fmt: skip
    elif tied == 1:
        top = done.loc[done["value"].idxmax()]
        handles.append(ax.scatter([top["params_mean"]], [top["params_std"]], marker="*", s=300, c="tab:red",
                                  edgecolors="black", zorder=9, label=f"best trial ({top['params_mean']:.3g}, "
                                  f"{top['params_std']:.3g}): {top['value'] * PERCENT:.2f}%"))  # fmt: skip
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=2, frameon=False
    )
    ax.set_title(f"{model}: Optuna trials over the grid", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def init_heatmap(frame: pd.DataFrame, path: str | Path) -> None:
    """The init study: accuracy over the factors on conv1's initial weights and biases."""
    mean = frame.groupby(["init_weight", "init_bias"])["final_accuracy"].mean().reset_index()
    weights, biases = np.sort(mean["init_weight"].unique()), np.sort(mean["init_bias"].unique())
    matrix = np.full((len(biases), len(weights)), np.nan)
    for _, row in mean.iterrows():
        matrix[np.searchsorted(biases, row["init_bias"]), np.searchsorted(weights, row["init_weight"])] = row[
            "final_accuracy"
        ]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    mesh = ax.pcolormesh(
        _edges(weights, log=True), _edges(biases, log=True), matrix * PERCENT, cmap="viridis"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_facecolor("0.85")
    fig.colorbar(mesh, ax=ax).set_label("test accuracy (%), mean over seeds")
    for i, b in enumerate(biases):
        for j, w in enumerate(weights):
            if np.isfinite(matrix[i, j]) and matrix.size <= 100:
                colour = "black" if matrix[i, j] > np.nanmean(matrix) else "white"
                ax.text(
                    w, b, f"{matrix[i, j] * PERCENT:.2f}", ha="center", va="center", fontsize=7, color=colour
                )
    ax.scatter(
        [1],
        [1],
        marker="o",
        s=90,
        facecolors="none",
        edgecolors="red",
        linewidths=1.5,
        label="PyTorch's default initialization (1, 1)",
    )
    ax.set_xlabel("factor on conv1's initial weights (log scale)")
    ax.set_ylabel("factor on conv1's initial biases (log scale)")
    first = frame.iloc[0]
    ax.set_title(
        f"{first['model']}: initialization of conv1 at mean {first['mean']}, std {first['std']}\n"
        f"{len(frame['seed'].unique())} seed(s), {int(first['epochs'])} epoch(s), {int(first['n_train'])} images",
        fontsize=10,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def histogram(cells: pd.DataFrame, path: str | Path) -> None:
    """Distribution of grid-cell accuracies, with the reference cells as vertical lines."""
    models = sorted(cells["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(7.5 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        cell = per_cell(cells[cells["model"] == model])
        grid = cell[cell["is_grid"]]["accuracy"].dropna() * PERCENT
        n_div = int(cell[cell["is_grid"]]["accuracy"].isna().sum())
        ax.hist(grid, bins=min(30, max(5, len(grid) // 3)), color="tab:blue", alpha=0.75, label="grid cells")
        for _, ref in cell[cell["reference"] != ""].iterrows():
            if math.isnan(ref["accuracy"]):
                continue
            _, colour = REFERENCE_STYLE.get(str(ref["reference"]), DEFAULT_STYLE)
            ax.axvline(
                ref["accuracy"] * PERCENT,
                color=colour if colour != "white" else "0.4",
                linestyle="--",
                linewidth=1.5,
                label=f"{ref['reference']}: {ref['accuracy'] * PERCENT:.2f}%",
            )
        ax.set_xlabel("test accuracy (%), mean over seeds")
        ax.set_ylabel("number of grid cells")
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # whole cells
        title = f"{model}: accuracy of {len(grid)} grid cells"
        if n_div:
            title += f" ({n_div} diverged, not shown)"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def learning_curves(cells: pd.DataFrame, epochs: pd.DataFrame, path: str | Path) -> None:
    """Test accuracy per epoch of the reference cells and of the best and worst grid cells
    (mean over seeds; the band spans the seeds' min to max)."""
    models = sorted(cells["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(7.5 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        cell = per_cell(cells[cells["model"] == model])
        curves: list[tuple[str, Any, str]] = []
        for _, ref in cell[cell["reference"] != ""].iterrows():
            _, colour = REFERENCE_STYLE.get(str(ref["reference"]), DEFAULT_STYLE)
            curves.append((str(ref["reference"]), ref, colour if colour != "white" else "0.3"))
        grid = ranked(cell)
        if not grid.empty:
            curves.append(("best grid cell", grid.loc[grid["accuracy"].idxmax()], "goldenrod"))
            curves.append(("worst grid cell", grid.loc[grid["accuracy"].idxmin()], "tab:purple"))
        ep = epochs[(epochs["model"] == model) & (epochs["epoch"] > 0)]
        for label, row, colour in curves:
            mine = ep[(ep["mean_label"] == row["mean_label"]) & (ep["std_label"] == row["std_label"])]
            if mine.empty:
                continue
            stats = mine.groupby("epoch")["test_accuracy"].agg(["mean", "min", "max"]) * PERCENT
            ax.plot(
                stats.index,
                stats["mean"],
                marker="o",
                markersize=4,
                color=colour,
                label=f"{label} {_where(row)}",
            )
            if int(row["n_seeds"]) > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(
            f"{model}: learning curves of the reference cells and the best and worst grid cells", fontsize=10
        )
        if not ep.empty:
            last = int(ep["epoch"].max())
            ax.set_xlim(0.5, last + 0.5)
            ax.set_xticks(range(1, last + 1, max(1, last // 10)))
        ax.grid(alpha=0.3)
        if ep.empty:  # evaluation only: one accuracy per cell, no curve
            ax.text(0.5, 0.5, "evaluation only (epochs: 0): no learning curves;\nsee the heatmap and the tables",
                    ha="center", va="center", transform=ax.transAxes)  # fmt: skip
        else:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def all_figures(
    cells: pd.DataFrame,
    epochs: pd.DataFrame,
    out: Mapping[str, str | Path],
    stats: pd.DataFrame | None = None,
    thresholds: Mapping[str, str] | None = None,
) -> None:
    for key in ("heatmap", "histogram", "curves"):
        Path(out[key]).parent.mkdir(parents=True, exist_ok=True)
    heatmap(cells, out["heatmap"], stats, thresholds)
    histogram(cells, out["histogram"])
    learning_curves(cells, epochs, out["curves"])
