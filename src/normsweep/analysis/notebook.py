"""The notebook's published LeNet numbers (30 epochs, full MNIST, one GPU run each, seed
1998), and how a rerun compares with them.

A published number is one run. Our cell has several seeds, so the question is whether one
more run of our cell could plausibly give that number: it is "within seed noise" when it
falls in the 95% prediction interval for a single run, mean ± t(0.975, n-1) · sd · √(1 + 1/n).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from normsweep.analysis.statistics import scipy_stats
from normsweep.core.cells import format_value

#: (name, mean, std, test accuracy after 30 epochs) as the notebook printed them.
NOTEBOOK_LENET = [
    ("classic", 0.1307, 0.3081, 0.9925),
    ("none", None, None, 0.9931),
    ("unit", 0.0, 1.0, 0.9931),
    ("half", 0.5, 0.25, 0.9906),
    ("grid best", 2.2857142857, 0.2, 0.9936),
    ("grid worst", -0.5714285714, 0.02, 0.9779),
    ("optuna best", 0.1440116284, 0.5690034869, 0.9935),
]


def compare_with_notebook(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per notebook number that the cells table has a cell for."""
    rows = []
    lenet = cells[cells["model"] == "lenet"]
    for name, mean, std, published in NOTEBOOK_LENET:
        mean_label, std_label = format_value(mean), format_value(std)
        acc = lenet[(lenet["mean_label"] == mean_label) & (lenet["std_label"] == std_label)]["final_accuracy"]
        acc = acc.to_numpy(float)
        acc = acc[np.isfinite(acc)]
        if len(acc) == 0:
            continue
        n = len(acc)
        ours = float(acc.mean())
        sd = float(acc.std(ddof=1)) if n > 1 else math.nan
        half = scipy_stats().t.ppf(0.975, n - 1) * sd * math.sqrt(1 + 1 / n) if n > 1 else math.nan
        within = bool(ours - half <= published <= ours + half) if n > 1 else None
        rows.append(
            {
                "cell": name,
                "mean": mean_label,
                "std": std_label,
                "notebook": published,
                "ours_mean": ours,
                "ours_sd": sd,
                "n_seeds": n,
                "prediction_low": ours - half,
                "prediction_high": ours + half,
                "difference": ours - published,
                "within_seed_noise": within,
            }
        )
    return pd.DataFrame(rows)


def comparison_markdown(table: pd.DataFrame, epochs: list[int], n_train: list[int]) -> str:
    lines = [
        "# The notebook's LeNet numbers, rerun",
        "",
        f"Our cells: epochs {epochs}, training images {n_train}. The notebook: 30 epochs, 60,000 images, one GPU run.",
        "A published number is within seed noise when it lies in the 95% prediction interval of one more run of our cell.",
        "",
        "| cell | mean | std | notebook | ours (mean ± sd) | seeds | 95% prediction interval | within seed noise |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        sd = "" if math.isnan(r["ours_sd"]) else f" ± {r['ours_sd']:.4f}"
        interval = (
            ""
            if math.isnan(r["prediction_low"])
            else f"[{r['prediction_low']:.4f}, {r['prediction_high']:.4f}]"
        )
        within = {True: "yes", False: "**no**"}.get(r["within_seed_noise"], "needs 2+ seeds")
        lines.append(
            f"| {r['cell']} | {r['mean']} | {r['std']} | {r['notebook']:.4f} | {r['ours_mean']:.4f}{sd} | "
            f"{r['n_seeds']} | {interval} | {within} |"
        )
    return "\n".join(lines) + "\n"
