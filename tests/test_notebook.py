import math

import pandas as pd
import pytest
from scipy import stats

from normsweep.analysis.notebook import compare_with_notebook, comparison_markdown


def cells(values):
    return pd.DataFrame(
        [
            {"model": "lenet", "mean_label": m, "std_label": s, "final_accuracy": a, "seed": i}
            for (m, s), accs in values.items()
            for i, a in enumerate(accs)
        ]
    )


def test_published_numbers_inside_and_outside_the_prediction_interval():
    table = compare_with_notebook(
        cells(
            {
                ("0.1307", "0.3081"): [0.9921, 0.9927, 0.9924],  # around the notebook's 0.9925
                ("0.5", "0.25"): [0.9950, 0.9952, 0.9951],  # far above its 0.9906
                ("none", "none"): [0.9930],  # one seed: cannot say
            }
        )
    ).set_index("cell")
    assert bool(table.loc["classic", "within_seed_noise"]) is True
    assert table.loc["half", "within_seed_noise"] == False  # noqa: E712
    assert table.loc["none", "within_seed_noise"] is None
    acc = [0.9921, 0.9927, 0.9924]
    sd = pd.Series(acc).std()
    half = stats.t.ppf(0.975, 2) * sd * math.sqrt(1 + 1 / 3)
    assert table.loc["classic", "prediction_high"] == pytest.approx(sum(acc) / 3 + half)
    text = comparison_markdown(table.reset_index(), [30], [60000])
    assert "| classic | 0.1307 | 0.3081 | 0.9925 |" in text and "**no**" in text
