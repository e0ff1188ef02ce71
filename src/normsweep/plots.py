"""Figures for people: the accuracy heatmap over (mean, std), the distribution of cell
accuracies, and the learning curves of the reference cells."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .table import grid_matrix, per_cell, ranked  # noqa: E402

PERCENT = 100.0
MEAN_LABEL = "mean subtracted, μ (pixel intensity, 0–1 scale)"
STD_LABEL = "std divided by, σ (pixel intensity, log scale)"
REFERENCE_STYLE = {  # marker, colour
    "dataset": ("o", "tab:red"),
    "classic": ("s", "tab:orange"),
    "unit": ("D", "white"),
    "none": ("x", "black"),
    "imagenet": ("P", "tab:cyan"),
    "half": ("v", "tab:olive"),
    "own": ("*", "gold"),  # a pretrained model's own normalization (normsweep.catalog)
}
DEFAULT_STYLE = ("^", "tab:pink")


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    v = np.log(values) if log else values.astype(float)
    if len(v) == 1:
        half = 0.5 if log else max(abs(v[0]) * 0.1, 0.1)
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(edges) if log else edges


def _where(cell: pd.Series) -> str:
    """A cell's place as people read it: its values, the data set's written out, per-channel
    values as their averages."""
    if cell["mean_label"] == "none":
        return "(none ≡ 0, 1)"
    if isinstance(cell.get("channel_means"), str) and math.isnan(cell["mean"]):
        means, stds = json.loads(cell["channel_means"]), json.loads(cell["channel_stds"])
        return f"(per channel, average {np.mean(means):.3f}, {np.mean(stds):.3f})"
    if cell["mean_label"] == "dataset" and not math.isnan(cell["mean"]):
        return f"({cell['mean']:.4f}, {cell['std']:.4f})"
    return f"({cell['mean_label']}, {cell['std_label']})"


#: The heatmap's panels: the column of the cells table, its colour-bar label, scale and text
#: format, and whether a higher value is better (issue 14: how fast a cell learns).
METRICS = {
    "final_accuracy": ("final test accuracy (%), mean over seeds", PERCENT, "{:.2f}", True),
    "epoch1_accuracy": ("test accuracy after epoch 1 (%), mean over seeds", PERCENT, "{:.2f}", True),
    "epochs_to_threshold": ("epochs to the threshold, mean over seeds (grey: never)", 1.0, "{:.1f}", False),
}


def heatmap_panel(
    ax: plt.Axes,
    cells: pd.DataFrame,
    model: str,
    fig: plt.Figure,
    differ: pd.DataFrame | None = None,
    metric: str = "final_accuracy",
    threshold_text: str = "",
) -> None:
    """One model's grid as a heatmap of ``metric`` (mean over seeds), references marked, and
    the cells in ``differ`` (different from the baseline beyond seed noise) outlined."""
    label, scale, fmt, higher_better = METRICS[metric]
    if metric != "final_accuracy":
        cells = cells.assign(final_accuracy=cells[metric])
    cell = per_cell(cells)
    means, stds, matrix = grid_matrix(cell)
    if len(means) == 0:
        ax.text(0.5, 0.5, "no grid cells", ha="center", va="center", transform=ax.transAxes)
        return
    mesh = ax.pcolormesh(
        _edges(means, log=False),
        _edges(stds, log=True),
        matrix * scale,
        cmap="viridis" if higher_better else "viridis_r",
        shading="flat",
    )
    ax.set_yscale("log")
    ax.set_facecolor("0.85")  # diverged (NaN) cells show as grey
    if len(stds) <= 16:  # tick every grid value, written as numbers rather than powers of ten
        ax.set_yticks(stds, [f"{v:.3g}" for v in stds])
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if len(means) <= 16:
        ax.set_xticks(means, [f"{v:.3g}" for v in means], rotation=45 if len(means) > 8 else 0)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(label)
    if metric == "epochs_to_threshold" and np.isfinite(matrix).any():  # whole epochs, one colour each
        low, high = int(np.floor(np.nanmin(matrix))), int(np.ceil(np.nanmax(matrix)))
        mesh.set_clim(low - 0.5, high + 0.5)
        bar.set_ticks(
            range(low, high + 1) if high - low <= 12 else matplotlib.ticker.MaxNLocator(integer=True)
        )
    if matrix.size <= 100:
        _write_values(ax, cell, means, stds, matrix, metric)

    grid = ranked(cell)  # cells with a diverged seed are not candidates for the best
    handles = []
    handles += _outline_differing(ax, grid, differ, means, stds)
    if not grid.empty:
        best = grid.loc[grid["accuracy"].idxmax() if higher_better else grid["accuracy"].idxmin()]
        handles.append(
            ax.scatter(
                best["mean"],
                best["std"],
                marker="*",
                s=260,
                c="gold",
                edgecolors="black",
                zorder=5,
                label=f"{'best' if higher_better else 'fastest'} grid cell ({best['mean_label']}, "
                f"{best['std_label']}): {fmt.format(best['accuracy'] * scale)}",
            )
        )
    handles += _reference_markers(ax, cell, metric)
    ax.set_xlabel(MEAN_LABEL)
    ax.set_ylabel(STD_LABEL)
    n_seeds = int(cell["n_seeds"].max())
    epochs = sorted(int(e) for e in cells["epochs_requested"].unique())
    n_train = sorted(int(n) for n in cells["n_train"].unique())
    what = {"final_accuracy": "final test accuracy", "epoch1_accuracy": "test accuracy after epoch 1",
            "epochs_to_threshold": f"epochs to reach {threshold_text or 'the threshold'}"}[metric]  # fmt: skip
    ax.set_title(
        f"{model}: {what}\n"
        f"{len(means)}×{len(stds)} cells, {n_seeds} seed(s), "
        + ("evaluation only (epochs 0)" if epochs == [0] else f"epochs {epochs}, {n_train} training images"),
        fontsize=10,
    )
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            fontsize=8,
            ncol=1 if max(len(h.get_label()) for h in handles) > 45 else 2,
            frameon=False,
        )


def _write_values(
    ax: plt.Axes, cell: pd.DataFrame, means: np.ndarray, stds: np.ndarray, matrix: np.ndarray, metric: str
) -> None:
    """Each grid cell's value written in it, with what the number does not say (seeds that
    diverged, seeds that never reach the threshold)."""
    _, scale, fmt, higher_better = METRICS[metric]
    threshold = np.nanmean(matrix) * scale if np.isfinite(matrix).any() else 0
    y_edges = _edges(stds, log=True)
    notes = _seed_notes(cell, metric)
    for i, s in enumerate(stds):
        s = y_edges[i] * (y_edges[i + 1] / y_edges[i]) ** 0.2  # low in the cell, clear of markers
        for j, m in enumerate(means):
            value = matrix[i, j]
            text = (
                ("div." if metric == "final_accuracy" else "–")
                if math.isnan(value)
                else fmt.format(value * scale)
            )
            if (
                metric != "final_accuracy"
                and math.isnan(value)
                and notes.get((m, stds[i]), "").endswith("never")
            ):
                text = "never"
            else:
                text += notes.get((m, stds[i]), "")
            bright = (value * scale > threshold) == higher_better
            colour = "0.2" if math.isnan(value) else "black" if bright else "white"  # grey cells: dark text
            ax.text(m, s, text, ha="center", va="center", fontsize=7, color=colour)


def _outline_differing(
    ax: plt.Axes, grid: pd.DataFrame, differ: pd.DataFrame | None, means: np.ndarray, stds: np.ndarray
) -> list:
    """Outline the grid cells in ``differ`` (different from the baseline beyond seed noise);
    the legend entry, if any."""
    handles: list = []
    if differ is not None and len(differ):
        x_edges, y_edges = _edges(means, log=False), _edges(stds, log=True)
        keys = set(zip(differ["mean_label"], differ["std_label"], strict=True))
        for _, row in grid.iterrows():
            if (row["mean_label"], row["std_label"]) in keys:
                j, i = int(np.searchsorted(means, row["mean"])), int(np.searchsorted(stds, row["std"]))
                ax.add_patch(
                    matplotlib.patches.Rectangle(
                        (x_edges[j], y_edges[i]),
                        x_edges[j + 1] - x_edges[j],
                        y_edges[i + 1] - y_edges[i],
                        fill=False,
                        edgecolor="red",
                        linewidth=2.0,
                        linestyle="--",
                        zorder=4,
                    )
                )
        handles.append(
            matplotlib.patches.Patch(
                fill=False,
                edgecolor="red",
                linestyle="--",
                linewidth=2.0,
                label=f"differs from the baseline (FDR 5%: Welch over seeds, McNemar if evaluation only; {len(keys)} cells)",
            )
        )
    return handles


def _reference_markers(ax: plt.Axes, cell: pd.DataFrame, metric: str) -> list:
    """A marker at each reference cell (per-channel values at their average; no normalization
    at (0, 1), the identity map); their legend entries."""
    _, scale, fmt, _ = METRICS[metric]
    handles: list = []
    for _, ref in cell[cell["reference"] != ""].iterrows():
        name = str(ref.get("reference_names") or ref["reference"])  # "own, imagenet": one cell, two names
        marker, colour = REFERENCE_STYLE.get(str(ref["reference"]), DEFAULT_STYLE)
        x, y = ref["mean"], ref["std"]
        where = _where(ref)
        channels = json.loads(ref["channel_means"]) if isinstance(ref["channel_means"], str) else None
        if channels is None:  # no normalization is the identity map: (0, 1)
            x, y = 0.0, 1.0
        elif math.isnan(x) or math.isnan(y):  # per-channel values: drawn at their average
            x, y = float(np.mean(channels)), float(np.mean(json.loads(ref["channel_stds"])))
        acc = (
            ("diverged" if metric == "final_accuracy" else "–")
            if math.isnan(ref["accuracy"])
            else fmt.format(ref["accuracy"] * scale)
        )
        handles.append(
            ax.scatter(
                x,
                y,
                marker=marker,
                s=90,
                c=colour,
                edgecolors=None if marker == "x" else "black",
                linewidths=1.2,
                zorder=7 if marker == "x" else 6,
                label=f"{name} {where}: {acc}",
            )
        )
    return handles


def _seed_notes(cell: pd.DataFrame, metric: str) -> dict[tuple[float, float], str]:
    """What a grid cell's number does not say, by (mean, std): how many of its seeds diverged,
    and for a speed metric how many never reached the threshold."""
    notes = {}
    for _, row in cell[cell["is_grid"]].iterrows():
        parts = []
        if 0 < row["n_diverged"] < row["n_seeds"]:
            parts.append(f"{row['n_diverged']}/{row['n_seeds']} div.")
        if metric != "final_accuracy" and row["n_never"] > 0:
            all_never = row["n_never"] == row["n_seeds"] - row["n_diverged"]
            parts.append("never" if all_never else f"{row['n_never']}/{row['n_seeds']} never")
        if parts:
            notes[(row["mean"], row["std"])] = "\n" + ", ".join(parts)
    return notes


def _evaluation_only(ax: plt.Axes, model: str, metric: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{model}: evaluation only (epochs: 0)\nno training, so no {metric.replace('_', ' ')}",
            ha="center", va="center", transform=ax.transAxes, fontsize=11)  # fmt: skip


def heatmap(
    cells: pd.DataFrame,
    path: str | Path,
    stats: pd.DataFrame | None = None,
    thresholds: Mapping[str, str] | None = None,
) -> None:
    """Heatmaps of every model in the table, one row per model and one panel per metric (final
    accuracy, and when the table has them epoch-1 accuracy and epochs to the threshold); with
    ``stats`` (:func:`normsweep.noise.compare_cells` per model) the cells that differ from the
    baseline beyond seed noise in that metric are outlined."""
    models = sorted(cells["model"].unique())
    trained = {m: bool((cells.loc[cells["model"] == m, "epochs_requested"] > 0).any()) for m in models}
    metrics = [m for m in METRICS if m in cells.columns and (m == "final_accuracy" or any(trained.values()))]
    fig, axes = plt.subplots(
        len(models), len(metrics), figsize=(8.5 * len(metrics), 7.2 * len(models)), squeeze=False
    )
    for row, model in enumerate(models):
        for ax, metric in zip(axes[row], metrics, strict=True):
            if metric != "final_accuracy" and not trained[model]:
                _evaluation_only(ax, model, metric)
                continue
            flag = "differs" if metric == "final_accuracy" else f"{metric}_differs"
            differ = None
            if stats is not None and flag in stats.columns:
                differ = stats[(stats["model"] == model) & stats[flag].fillna(False).astype(bool)]
            heatmap_panel(ax, cells[cells["model"] == model], model, fig, differ, metric,
                          (thresholds or {}).get(model, ""))  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        top = done.loc[done["value"].idxmax()]
        ax.scatter(
            [top["params_mean"]],
            [top["params_std"]],
            marker="*",
            s=300,
            c="tab:red",
            edgecolors="black",
            zorder=9,
            label=f"best trial ({top['params_mean']:.3g}, {top['params_std']:.3g}): "
            f"{top['value'] * PERCENT:.2f}%",
        )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=2, frameon=False)
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
        ax.set_title(f"{model}: learning curves of the reference cells", fontsize=10)
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
