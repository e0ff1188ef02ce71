import math

import pandas as pd
import pytest
from test_results import make_result

from normsweep.analysis import comparisons, table
from normsweep.analysis.summary import summary_markdown
from normsweep.core import cells
from normsweep.core.results import EpochRecord


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
    summary = comparisons.summarize(frame, {"lenet": "classic"})["lenet"]
    assert summary["best"]["mean"] == "0" and summary["best"]["std"] == "0.5"
    assert summary["best"]["accuracy"] == pytest.approx(0.98)
    assert summary["worst"]["mean"] == "1" and summary["worst"]["accuracy"] == pytest.approx(0.91)
    assert summary["references"]["classic"]["accuracy"] == pytest.approx(0.9925)
    assert summary["n_diverged"] == 2
    assert summary["seed_sd_max"] == pytest.approx(pd.Series([0.97, 0.99]).std())
    assert summary["mixed_versions"] is False
    assert summary["noise"]["baseline"] == "classic" and summary["noise"]["n_compared"] == 4
    assert "Welch" in summary["noise"]["method"]
    text = summary_markdown({"lenet": summary})
    assert "| best grid cell | 0 | 0.5 | 0.9800 |" in text and "Warning" not in text

    epochs = table.epochs_table(res)
    assert len(epochs) == 12 and {"epoch", "test_accuracy", "train_loss", "lr"} <= set(epochs.columns)


def test_mixed_versions_are_flagged():
    res = results_of({("0", "0.5"): [0.97]}) + [
        make_result(0.9, mean_label="1", std_label="1", versions={"torch": "2.0"})
    ]
    summary = comparisons.summarize(table.cells_table(res, {}))
    assert summary["lenet"]["mixed_versions"] is True
    assert "Warning" in summary_markdown(summary)


def test_grid_matrix_is_std_by_mean():
    res = results_of({("0", "0.5"): [0.1], ("0", "1"): [0.2], ("1", "0.5"): [0.3], ("1", "1"): [0.4]})
    cell = table.per_cell(table.cells_table(res, {"lenet": cells.cell_roles("lenet", CONFIG)}))
    means, stds, matrix = table.grid_matrix(cell)
    assert means.tolist() == [0.0, 1.0] and stds.tolist() == [0.5, 1.0]
    assert matrix.tolist() == [[0.1, 0.3], [0.2, 0.4]]


def test_learning_speed_metrics_on_hand_made_curves():
    curve = [0.90, 0.95, 0.975, 0.985, 0.99]
    m = table.convergence_metrics(curve, "ok", level=0.98, relative=0.99, absolute=0.98, floor=0.2)
    assert m["epoch1_accuracy"] == 0.90
    assert m["epochs_to_relative"] == 4  # the first >= 0.99 x 0.99 = 0.9801
    assert m["epochs_to_absolute"] == 4 and m["epochs_to_threshold"] == 4
    assert m["auc"] == pytest.approx(sum(curve) / 5)
    never = table.convergence_metrics([0.5, 0.6, 0.7], "ok", level=0.98, absolute=0.98, floor=0.2)
    assert math.isnan(never["epochs_to_absolute"]) and never["epochs_to_relative"] == 3
    assert math.isnan(never["epochs_to_threshold"])
    diverged = table.convergence_metrics([0.5, math.nan], "diverged", level=0.5, absolute=0.98)
    assert all(math.isnan(v) for v in diverged.values())


def test_a_cell_stuck_at_chance_never_reaches_and_is_not_the_fastest():
    """With 99% of its own final accuracy as the threshold, a dead cell (0.1135, the
    most frequent MNIST digit, every epoch) reached it in epoch 1 and was the fastest cell."""
    dead = table.convergence_metrics([0.1135, 0.1135, 0.1135], "ok", level=0.95, floor=0.2)
    assert math.isnan(dead["epochs_to_threshold"]) and math.isnan(dead["epochs_to_relative"])
    assert dead["epoch1_accuracy"] == 0.1135  # still recorded
    learning = [EpochRecord(e, a, 0.1, 0.2, 1.0, 1.0) for e, a in enumerate([0.90, 0.965, 0.97], 1)]
    stuck = [EpochRecord(e, 0.1135, 2.3, 2.3, 1.0, 1.0) for e in (1, 2, 3)]
    res = [
        make_result(0.97, mean_label="0.5", std_label="0.5", mean=[0.5], std=[0.5], seed=s, epochs=learning)
        for s in (1, 2)
    ] + [
        make_result(0.1135, mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=1, epochs=stuck),
        make_result(0.97, mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=2, epochs=learning),
    ]
    roles = {"lenet": {"0.5|0.5": {"grid": True}, "3|0.02": {"grid": True}}}
    cells_ = table.cells_table(res, roles)
    # the default threshold: 99% of the best cell's final accuracy (0.97), floor twice chance (0.2)
    assert cells_["threshold_level"].iloc[0] == pytest.approx(0.99 * 0.97)
    assert cells_.loc[cells_["mean_label"] == "0.5", "epochs_to_threshold"].tolist() == [2.0, 2.0]
    cell = table.per_cell(cells_.assign(final_accuracy=cells_["epochs_to_threshold"]))
    assert dict(zip(cell["mean_label"], cell["n_never"], strict=True)) == {"0.5": 0, "3": 1}  # one seed never
    speed = comparisons.summarize(cells_)["lenet"]["speed"]
    assert speed["groups"]["all <= 0"]["seeds_never"] == 1
    assert "1 seed run(s) in all never reach it" in speed["answer"]
    assert "99% of the best cell's final accuracy = 0.9603" in speed["answer"]


def test_a_cell_whose_seeds_diverged_is_not_ranked_and_says_so():
    """2 of 3 seeds diverged and the third did well: it was the "best grid cell"."""
    res = [
        make_result(0.95, mean_label="0.5", std_label="0.5", mean=[0.5], std=[0.5], seed=s) for s in (1, 2, 3)
    ]
    res += [make_result(0.99, mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=1)]
    res += [
        make_result(
            math.nan, status="diverged", mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=s
        )
        for s in (2, 3)
    ]
    roles = {"lenet": {"0.5|0.5": {"grid": True}, "3|0.02": {"grid": True}}}
    summary = comparisons.summarize(table.cells_table(res, roles))
    entry = summary["lenet"]
    assert entry["best"]["mean"] == "0.5" and entry["best"]["n_diverged"] == 0
    assert entry["partly_diverged"] == [{"mean": "3", "std": "0.02", "n_diverged": 2, "n_seeds": 3}]
    text = summary_markdown(summary)
    assert "Not ranked, some seeds diverged: (3, 0.02) 2 of 3." in text
    assert "| diverged seeds |" in text


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
    speed = comparisons.summarize(cells, {"lenet": "classic"}, levels)["lenet"]["speed"]
    assert speed["groups"]["both signs"]["median_epochs"] == 2
    assert speed["groups"]["all >= 0"]["median_epochs"] == pytest.approx(3.8)
    assert speed["slower"] == 1 and speed["faster"] == 0  # mu = -1 learns slower than classic
    assert "inputs of both signs (0 < μ < 1): 2 epochs (epoch-1 accuracy 0.9600)" in speed["answer"]
    assert "0.98 test accuracy" in speed["answer"] and "1 slower" in speed["answer"]


def test_cell_stats_count_the_seeds_that_never_reach_the_threshold():
    stuck = [EpochRecord(e, 0.1135, 2.3, 2.3, 1.0, 1.0) for e in (1, 2)]
    learning = [EpochRecord(e, a, 0.1, 0.2, 1.0, 1.0) for e, a in enumerate([0.95, 0.97], 1)]
    res = [
        make_result(0.1135, mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=1, epochs=stuck),
        make_result(0.97, mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=2, epochs=learning),
        make_result(math.nan, status="diverged", mean_label="3", std_label="0.02", mean=[3.0], std=[0.02], seed=3,
                    epochs=learning[:1]),
    ]  # fmt: skip
    from normsweep.analysis.statistics import compare_cells

    stats = compare_cells(
        table.cells_table(res, {"lenet": {"3|0.02": {"grid": True}}}), None, table.SPEED_METRICS
    )
    assert stats["epochs_to_threshold_never"].tolist() == [
        1
    ]  # the stuck seed; the diverged one is not "never"


def test_a_table_mixing_packed_and_lone_cells_warns():
    """Cells of a pack and of one-cell runs differ like runs on other thread counts."""
    res = results_of({("0", "0.5"): [0.97], ("1", "1"): [0.95]})
    res[0].pack, res[0].pack_size = "abc", 4
    summary = comparisons.summarize(table.cells_table(res, {}))
    assert summary["lenet"]["mixed_modes"] is True
    assert summary["lenet"]["training_modes"] == {"pack": 1, "alone": 1}
    assert "mixes cells trained in packs (1 results) and cells trained alone (1)" in summary_markdown(summary)
    alone = comparisons.summarize(
        table.cells_table(results_of({("0", "0.5"): [0.97], ("1", "1"): [0.95]}), {})
    )
    assert alone["lenet"]["mixed_modes"] is False and "mixes cells" not in summary_markdown(alone)
