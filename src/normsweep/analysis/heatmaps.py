"""The accuracy heatmap over (mean, std): one panel per model and metric, with the grid cells' values,
the reference points marked, the cells that differ from the baseline outlined and the seeds noted.
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from normsweep.analysis.table import grid_matrix, per_cell, ranked  # noqa: E402

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
    "own": ("*", "gold"),  # a pretrained model's own normalization (normsweep.models.catalog)
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
#: format, and whether a higher value is better (how fast a cell learns).
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
    if not np.isfinite(matrix).any():  # every cell grey (never): a colour scale would show made-up values
        bar.remove()
    if matrix.size <= 100:
        _write_values(ax, cell, means, stds, matrix, metric)

    grid = ranked(cell)  # cells with a diverged seed are not candidates for the best
    handles = []
    handles += _outline_differing(ax, grid, differ, means, stds)
    word = "best" if higher_better else "fastest"
    top = grid["accuracy"].max() if higher_better else grid["accuracy"].min()
    tied = int(np.isclose(grid["accuracy"], top, rtol=0, atol=1e-9).sum()) if not grid.empty else 0
    if tied > 1:  # a star on one of them would be arbitrary: none is marked, and the legend says so
        handles.append(matplotlib.lines.Line2D([], [], linestyle="none", label=(
            f"no {word} cell marked: {tied} grid cells tie at {fmt.format(top * scale)}")))  # fmt: skip
    elif not grid.empty:
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
                label=f"{word} grid cell ({best['mean_label']}, "
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
        + (
            "evaluation only (epochs 0)"
            if epochs == [0]
            else f"{_listed(epochs)} epoch{'s' if epochs != [1] else ''}, {_listed(n_train)} training images"
        ),
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


def _listed(values: list[int]) -> str:
    """Numbers for a title: "2", "1 or 2", "4,000"; never a Python list."""
    text = [f"{v:,}" for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " or " + text[-1]


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
    ``stats`` (:func:`normsweep.analysis.statistics.compare_cells` per model) the cells that differ from the
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
