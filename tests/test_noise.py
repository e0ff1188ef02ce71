import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from normsweep.analysis import statistics


def rows(cells: dict[tuple[str, str], list[float]], baseline=("0.1307", "0.3081")) -> pd.DataFrame:
    out = []
    for (m, s), accs in cells.items():
        for seed, acc in enumerate(accs):
            out.append(
                {
                    "mean_label": m,
                    "std_label": s,
                    "seed": seed,
                    "final_accuracy": acc,
                    "reference": "classic" if (m, s) == baseline else "",
                }
            )
    return pd.DataFrame(out)


def test_confidence_interval_is_students_t():
    values = np.array([0.990, 0.992, 0.991, 0.993])
    low, high = statistics.confidence_interval(values)
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half))
    assert all(math.isnan(v) for v in statistics.confidence_interval(np.array([0.99])))


def test_welch_matches_scipy_and_handles_constants():
    a, b = np.array([0.99, 0.991, 0.992]), np.array([0.95, 0.96, 0.955, 0.952])
    assert statistics.welch(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert statistics.welch(np.array([0.9, 0.9]), np.array([0.9, 0.9])) == 1.0
    assert math.isnan(statistics.welch(np.array([0.9]), b))


def test_a_clear_drop_differs_and_a_notebook_sized_gap_does_not():
    table = statistics.compare_cells(
        rows(
            {
                ("0.1307", "0.3081"): [0.9925, 0.9918, 0.9931],  # the classic baseline, 3 seeds
                ("2.28571", "0.2"): [0.9936, 0.9921, 0.9929],  # the notebook's "best": +0.1 point
                ("-0.571429", "0.02"): [0.9779, 0.9790, 0.9770],  # the notebook's worst: -1.5 points
            }
        ),
        baseline="classic",
    ).set_index("mean_label")
    assert bool(table.loc["-0.571429", "differs"]) is True
    assert bool(table.loc["2.28571", "differs"]) is False  # within seed noise
    assert math.isnan(table.loc["0.1307", "p_value"])  # the baseline is not compared with itself
    assert table.loc["-0.571429", "diff_vs_baseline"] == pytest.approx(0.9779666 - 0.9924666, abs=1e-6)
    # Benjamini-Hochberg over the two compared cells
    raw = table.loc[["2.28571", "-0.571429"], "p_value"].to_numpy()
    assert table.loc[["2.28571", "-0.571429"], "p_adjusted"].to_numpy() == pytest.approx(
        stats.false_discovery_control(raw, method="bh")
    )


def test_many_cells_are_corrected_for():
    rng = np.random.default_rng(0)
    cells = {("0.1307", "0.3081"): list(0.99 + 0.001 * rng.standard_normal(3))}
    for i in range(100):  # 100 cells with the same true accuracy as the baseline
        cells[(str(i), "1")] = list(0.99 + 0.001 * rng.standard_normal(3))
    table = statistics.compare_cells(rows(cells), baseline="classic")
    assert (table["p_value"] < 0.05).sum() >= 1  # uncorrected, some look "significant"
    assert table["differs"].sum() == 0  # corrected, none does


def test_without_baseline_or_seeds_nothing_is_tested():
    table = statistics.compare_cells(
        rows({("0", "1"): [0.9], ("0.1307", "0.3081"): [0.95]}), baseline="classic"
    )
    assert table["p_value"].isna().all() and not table["differs"].any()


def test_a_table_of_one_seed_per_cell_is_compared_without_scipy():
    """scipy.stats costs 2 CPU-s at import: the aggregate and plot jobs of a one-seed study
    (most of them) compare their cells without it, and a test that needs it imports it."""
    code = """
import sys
import pandas as pd
from normsweep.analysis import statistics
rows = pd.DataFrame([{"mean_label": m, "std_label": "1", "seed": 1998, "final_accuracy": a,
                      "reference": "classic" if m == "0" else ""} for m, a in (("0", 0.9), ("1", 0.8))])
table = statistics.compare_cells(rows, baseline="classic")
assert table["p_value"].isna().all(), table
print("scipy" in sys.modules)
statistics.confidence_interval(pd.Series([0.9, 0.91, 0.92]).to_numpy())
print("scipy.stats" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "True"]
