"""Is a difference real? Seed noise per cell, and which cells differ from the baseline.

With several seeds per cell, each cell's final accuracy has a mean, a standard deviation
and a 95% confidence interval (Student's t). Each cell is compared with the baseline cell by
Welch's t-test (unequal variances), and the p-values of all the cells of a model are
adjusted together with the Benjamini-Hochberg procedure, so that at most about 5% of the
cells called different are false discoveries, however many cells the grid has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import ModuleType

import numpy as np
import pandas as pd

ALPHA = 0.05
METHOD = "Welch's t-test per cell against the baseline, Benjamini-Hochberg FDR 5% across the cells of a model"
#: Evaluation cells (epochs: 0) classify the same images: a paired test of the images themselves.
MCNEMAR = (
    "McNemar's exact test per cell against the baseline on the same test images (identical seeds counted "
    "once; several distinct seeds merged as twice their mean p), Benjamini-Hochberg FDR 5% across the cells "
    "of a model"
)
#: Both, when some comparisons have per-image predictions on both sides and others do not.
MIXED = (
    "McNemar's exact test on the same test images where both cells kept their predictions, Welch's t-test "
    "over seeds where not; Benjamini-Hochberg FDR 5% across the cells of a model"
)


def scipy_stats() -> ModuleType:
    """scipy.stats, imported at the first test (2 CPU-s on a login node): a table of one seed
    per cell, which most jobs aggregate, never needs it."""
    from scipy import stats

    return stats


def confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean; NaN with fewer than two values."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    half = scipy_stats().t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def welch(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test; 1 when both samples are equal constants, NaN
    when a test is impossible (fewer than two finite values on a side, or zero variance
    with different means, which seeds cannot show)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:
        return 1.0 if a.mean() == b.mean() else math.nan
    return float(scipy_stats().ttest_ind(a, b, equal_var=False).pvalue)


def mcnemar(base: np.ndarray, other: np.ndarray) -> tuple[int, int, float]:
    """McNemar's exact test of two classifiers on the same images (``base``, ``other``: which
    images each got right): the images only the baseline got right, those only the other got
    right, and the two-sided p-value (binomial, p = 1/2, on the discordant images)."""
    base, other = np.asarray(base, bool), np.asarray(other, bool)
    if base.shape != other.shape:
        raise ValueError(f"McNemar needs the same images: {base.shape} vs {other.shape} predictions")
    only_base, only_other = int((base & ~other).sum()), int((~base & other).sum())
    return only_base, only_other, _discordant_p(only_base, only_other)


def _discordant_p(only_base: int, only_other: int) -> float:
    """Two-sided exact binomial p (p = 1/2) of the discordant images; 1 when there are none."""
    if only_base + only_other == 0:
        return 1.0
    return float(scipy_stats().binomtest(only_other, only_base + only_other, 0.5).pvalue)


def seeds_mcnemar(base: Mapping[int, np.ndarray], other: Mapping[int, np.ndarray]) -> float:
    """McNemar over the seeds both cells kept predictions for; NaN without a shared seed.

    Every seed classifies the same test images, so seeds are never independent evidence about
    those images, and with pretrained weights and no training every seed is the same network:
    summing the discordant counts over seeds would count the same images twice (b=45, c=60:
    p 0.17 with one seed, 0.045 with two identical ones). So seeds whose pair of predictions
    repeats another seed's are counted once; one distinct seed gives its exact p; several give
    their exact p-values merged as twice their mean, capped at 1, which is a valid p-value
    whatever the dependence between them (Vovk and Wang 2020, "Combining p-values via
    averaging"), and conservative when they are independent."""
    seeds = sorted(set(base) & set(other))
    if not seeds:
        return math.nan
    distinct: dict[bytes, float] = {}
    for seed in seeds:
        a, b = np.asarray(base[seed], bool), np.asarray(other[seed], bool)
        key = np.packbits(a).tobytes() + b"|" + np.packbits(b).tobytes()
        if key not in distinct:
            distinct[key] = mcnemar(a, b)[2]
    p = list(distinct.values())
    return p[0] if len(p) == 1 else min(1.0, 2.0 * float(np.mean(p)))


#: compare_cells' names for the final accuracy's columns (those of compare_metric).
ACCURACY_COLUMNS = {
    "final_accuracy_mean": "accuracy_mean",
    "final_accuracy_sd": "accuracy_sd",
    "final_accuracy_diff": "diff_vs_baseline",
    "final_accuracy_p": "p_value",
    "final_accuracy_p_adjusted": "p_adjusted",
    "final_accuracy_differs": "differs",
    "final_accuracy_test": "test",
}


def compare_cells(
    rows: pd.DataFrame,
    baseline: str | None,
    metrics: tuple[str, ...] = (),
    correct: Mapping[tuple[str, str, int], np.ndarray] | None = None,
) -> pd.DataFrame:
    """One model's cells table (one row per cell and seed) -> one row per cell with the
    seed statistics of the final accuracy (and its 95% interval) and, when ``baseline`` names a
    reference cell, the comparison with it; then the same for each of ``metrics``. With
    ``correct`` ((mean label, std label, seed) -> which test images the cell got right, kept by
    evaluation cells) the final accuracy is compared by McNemar's test where both cells have them
    (the ``test`` column says which test each comparison used)."""
    keys = ["mean_label", "std_label"]
    cells = pd.DataFrame(
        [
            {
                "mean_label": mean_label,
                "std_label": std_label,
                "reference": group["reference"].iloc[0],
                "n_seeds": int(len(group)),
                **dict(
                    zip(
                        ("ci95_low", "ci95_high"),
                        confidence_interval(group["final_accuracy"].to_numpy(float)),
                        strict=True,
                    )
                ),
            }
            for (mean_label, std_label), group in rows.groupby(keys, sort=False)
        ]
    )
    accuracy = compare_metric(rows, baseline, "final_accuracy", correct).rename(columns=ACCURACY_COLUMNS)
    table = cells.merge(accuracy, on=keys, how="left")[
        [*keys, "reference", "n_seeds", "accuracy_mean", "accuracy_sd", "ci95_low", "ci95_high",
         "diff_vs_baseline", "p_value", "test", "p_adjusted", "differs"]
    ]  # fmt: skip
    for metric in metrics:
        if metric in rows.columns:
            table = table.merge(compare_metric(rows, baseline, metric), on=keys, how="left")
    return table


def compare_metric(
    rows: pd.DataFrame,
    baseline: str | None,
    metric: str,
    correct: Mapping[tuple[str, str, int], np.ndarray] | None = None,
) -> pd.DataFrame:
    """As :func:`compare_cells` for another per-seed column (e.g. epochs to a threshold): its
    mean and sd over seeds, difference from the baseline, Welch p-value and BH adjustment across
    the model's cells, in columns named ``<metric>_mean``, ``_sd``, ``_diff``, ``_p``,
    ``_p_adjusted``, ``_differs``."""
    keys = ["mean_label", "std_label"]
    groups = {key: group for key, group in rows.groupby(keys, sort=False)}
    base = next((g for g in groups.values() if baseline and (g["reference"] == baseline).any()), None)
    base_values = base[metric].to_numpy(float) if base is not None else None
    out = []
    for (mean_label, std_label), group in groups.items():
        values = group[metric].to_numpy(float)
        finite = values[np.isfinite(values)]
        row = {
            "mean_label": mean_label,
            "std_label": std_label,
            f"{metric}_mean": float(finite.mean()) if len(finite) else math.nan,
            f"{metric}_sd": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            f"{metric}_diff": math.nan,
            f"{metric}_p": math.nan,
            f"{metric}_test": "",
        }
        if metric.startswith("epochs_to"):  # seeds that trained on and never reached the threshold
            trained = group["status"] != "diverged" if "status" in group else True
            row[f"{metric}_never"] = int((group[metric].isna() & trained).sum())
        if base_values is not None and group is not base and len(finite):
            row[f"{metric}_diff"] = row[f"{metric}_mean"] - float(np.nanmean(base_values))
            # each comparison uses the test its data allows: McNemar where both cells kept their
            # per-image predictions for a shared seed, Welch over seeds otherwise
            paired = seeds_mcnemar(_seeds(correct, base), _seeds(correct, group)) if correct else math.nan
            if not math.isnan(paired):
                row[f"{metric}_p"], row[f"{metric}_test"] = paired, "McNemar"
            else:
                row[f"{metric}_p"] = welch(values, base_values)
                row[f"{metric}_test"] = "" if math.isnan(row[f"{metric}_p"]) else "Welch"
        out.append(row)
    table = pd.DataFrame(out)
    tested = table[f"{metric}_p"].notna()
    table[f"{metric}_p_adjusted"] = math.nan
    if tested.any():
        table.loc[tested, f"{metric}_p_adjusted"] = scipy_stats().false_discovery_control(
            table.loc[tested, f"{metric}_p"], method="bh"
        )
    table[f"{metric}_differs"] = table[f"{metric}_p_adjusted"] < ALPHA
    return table


def _seeds(correct: Mapping[tuple[str, str, int], np.ndarray], group: pd.DataFrame) -> dict[int, np.ndarray]:
    """A cell's kept predictions per seed (seeds that kept none are left out)."""
    out = {}
    for _, row in group.iterrows():
        key = (row["mean_label"], row["std_label"], int(row["seed"]))
        if key in correct:
            out[int(row["seed"])] = correct[key]
    return out
