import math

import pandas as pd
import pytest
from test_results import make_result

from normsweep import cells, table
from normsweep.results import EpochRecord


def results_of(values):
    """values: {(mean_label, std_label): [accuracy per seed]}"""
    out = []
    for (m, s), accs in values.items():
        for seed, acc in enumerate(accs):
            mean = None if m == "none" else [float(m)]
            std = None if s == "none" else [float(s)]
            out.append(
                make_result(
                    acc,
                    "diverged" if math.isnan(acc) else "ok",
                    mean_label=m,
                    std_label=s,
                    mean=mean,
                    std=std,
                    seed=seed,
                )
            )
    return out


CONFIG = {
    "grid": {"mean": [0.0, 1.0], "std": [0.5, 1.0]},
    "references": {"none": "none", "classic": {"mean": 0.1307, "std": 0.3081}},
}


def test_tables_summary_best_worst_references_and_seed_spread():
    res = results_of(
        {
            ("0", "0.5"): [0.97, 0.99],
            ("0", "1"): [0.95, 0.95],
            ("1", "0.5"): [0.90, 0.92],
            ("1", "1"): [math.nan, math.nan],
            ("none", "none"): [0.96, 0.96],
            ("0.1307", "0.3081"): [0.99, 0.995],
        }
    )
    roles = {"lenet": cells.cell_roles("lenet", CONFIG)}
    frame = table.cells_table(res, roles)
    assert len(frame) == 12 and frame["is_grid"].sum() == 8
    assert set(frame.loc[frame["reference"] != "", "reference"]) == {"none", "classic"}
    summary = table.summarize(frame, {"lenet": "classic"})["lenet"]
    assert summary["best"]["mean"] == "0" and summary["best"]["std"] == "0.5"
    assert summary["best"]["accuracy"] == pytest.approx(0.98)
    assert summary["worst"]["mean"] == "1" and summary["worst"]["accuracy"] == pytest.approx(0.91)
    assert summary["references"]["classic"]["accuracy"] == pytest.approx(0.9925)
    assert summary["n_diverged"] == 2
    assert summary["seed_sd_max"] == pytest.approx(pd.Series([0.97, 0.99]).std())
    assert summary["mixed_versions"] is False
    assert summary["noise"]["baseline"] == "classic" and summary["noise"]["n_compared"] == 4
    assert "Welch" in summary["noise"]["method"]
    text = table.summary_markdown({"lenet": summary})
    assert "| best grid cell | 0 | 0.5 | 0.9800 |" in text and "Warning" not in text

    epochs = table.epochs_table(res)
    assert len(epochs) == 12 and {"epoch", "test_accuracy", "train_loss", "lr"} <= set(epochs.columns)


def test_mixed_versions_are_flagged():
    res = results_of({("0", "0.5"): [0.97]}) + [
        make_result(0.9, mean_label="1", std_label="1", versions={"torch": "2.0"})
    ]
    summary = table.summarize(table.cells_table(res, {}))
    assert summary["lenet"]["mixed_versions"] is True
    assert "Warning" in table.summary_markdown(summary)


def test_grid_matrix_is_std_by_mean():
    res = results_of({("0", "0.5"): [0.1], ("0", "1"): [0.2], ("1", "0.5"): [0.3], ("1", "1"): [0.4]})
    cell = table.per_cell(table.cells_table(res, {"lenet": cells.cell_roles("lenet", CONFIG)}))
    means, stds, matrix = table.grid_matrix(cell)
    assert means.tolist() == [0.0, 1.0] and stds.tolist() == [0.5, 1.0]
    assert matrix.tolist() == [[0.1, 0.3], [0.2, 0.4]]


def test_learning_speed_metrics_on_hand_made_curves():
    curve = [0.90, 0.95, 0.975, 0.985, 0.99]
    m = table.convergence_metrics(curve, "ok", relative=0.99, absolute=0.98)
    assert m["epoch1_accuracy"] == 0.90
    assert m["epochs_to_relative"] == 4  # the first >= 0.99 x 0.99 = 0.9801
    assert m["epochs_to_absolute"] == 4 and m["epochs_to_threshold"] == 4
    assert m["auc"] == pytest.approx(sum(curve) / 5)
    never = table.convergence_metrics([0.5, 0.6, 0.7], "ok", absolute=0.98)
    assert math.isnan(never["epochs_to_absolute"]) and never["epochs_to_relative"] == 3
    diverged = table.convergence_metrics([0.5, math.nan], "diverged", absolute=0.98)
    assert all(math.isnan(v) for v in diverged.values())
    relative_only = table.convergence_metrics([0.5, 0.805, 0.81], "ok")
    assert relative_only["epochs_to_threshold"] == relative_only["epochs_to_relative"] == 2  # 0.805 >= 0.8019


def test_the_summary_says_which_inputs_learn_faster():
    def reaching(epoch):  # a 5-epoch curve that first reaches 0.98 at `epoch`
        accuracies = [0.96] * (epoch - 1) + [0.985] * (6 - epoch)
        return [EpochRecord(e, a, 0.1, 0.2, 1.0, 1.0) for e, a in enumerate(accuracies, 1)]

    res = []
    for seed in (1, 2, 3, 4, 5):
        early = 1 if seed == 5 else 0  # one seed of two cells a little faster: seed noise
        for mean, std, epoch in (
            ("0.5", "0.5", 2),
            ("-1", "0.5", 4 - early),
            ("0.1307", "0.3081", 2 - early),
        ):
            res.append(
                make_result(0.985, mean_label=mean, std_label=std, mean=[float(mean)], std=[float(std)], seed=seed,
                            epochs=reaching(epoch))
            )  # fmt: skip
    roles = {
        "lenet": {
            "0.5|0.5": {"grid": True},
            "-1|0.5": {"grid": True},
            "0.1307|0.3081": {"reference": "classic"},
        }
    }
    levels = {"lenet": {"relative": 0.99, "absolute": 0.98}}
    cells = table.cells_table(res, roles, levels)
    speed = table.summarize(cells, {"lenet": "classic"}, levels)["lenet"]["speed"]
    assert speed["groups"]["both signs"]["median_epochs"] == 2
    assert speed["groups"]["all >= 0"]["median_epochs"] == pytest.approx(3.8)
    assert speed["slower"] == 1 and speed["faster"] == 0  # mu = -1 learns slower than classic
    assert "inputs of both signs (0 < μ < 1): 2 epochs (epoch-1 accuracy 0.9600)" in speed["answer"]
    assert "0.98 test accuracy" in speed["answer"] and "1 slower" in speed["answer"]
