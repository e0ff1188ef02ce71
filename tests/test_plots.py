import matplotlib.image as mpimg
import pandas as pd
from test_results import make_result

from normsweep.analysis import plots, table
from normsweep.core.cells import cell_roles


def test_heatmap_has_a_row_per_model_and_a_panel_per_metric(tmp_path):
    rows = []
    for model in ("lenet", "resnet18"):
        config = {"grid": {"mean": [0.0, 1.0], "std": [0.5, 1.0]}, "references": {"none": "none"}}
        results = [
            make_result(
                0.5 + 0.1 * i, model=model, mean_label=m, std_label=s, mean=[float(m)], std=[float(s)]
            )
            for i, (m, s) in enumerate([("0", "0.5"), ("0", "1"), ("1", "0.5"), ("1", "1")])
        ]
        results.append(
            make_result(0.7, model=model, mean_label="none", std_label="none", mean=None, std=None)
        )
        rows.append(table.cells_table(results, {model: cell_roles(model, config)}))
    cells = pd.concat(rows, ignore_index=True)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    plots.heatmap(cells[cells["model"] == "lenet"], one)
    plots.heatmap(cells, two)
    height, width = mpimg.imread(one).shape[:2]
    assert mpimg.imread(two).shape[0] > 1.8 * height  # one row per model
    assert width > 3 * height  # final accuracy, epoch-1 accuracy, epochs to the threshold side by side
    only_final = tmp_path / "final.png"
    plots.heatmap(
        cells[cells["model"] == "lenet"].drop(columns=["epoch1_accuracy", "epochs_to_threshold"]), only_final
    )
    assert mpimg.imread(only_final).shape[1] < width / 2.5  # a table without them: one panel


def test_titles_hold_no_python_lists_and_a_tie_marks_no_cell():
    """Titles read "1 epoch, 300 training images" (not "epochs [1], [300]"); when
    several grid cells tie for best, none gets the star and the legend says so."""
    import matplotlib.pyplot as plt

    from normsweep.analysis.heatmaps import heatmap_panel

    config = {"grid": {"mean": [0.0, 1.0], "std": [0.5, 1.0]}, "references": {}}
    cells_of = [("0", "0.5"), ("0", "1"), ("1", "0.5"), ("1", "1")]

    def panel(accuracies):
        results = [make_result(a, mean_label=m, std_label=s, mean=[float(m)], std=[float(s)])
                   for a, (m, s) in zip(accuracies, cells_of, strict=True)]  # fmt: skip
        fig, ax = plt.subplots()
        heatmap_panel(ax, table.cells_table(results, {"lenet": cell_roles("lenet", config)}), "lenet", fig)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        plt.close(fig)
        return ax.get_title(), labels

    title, labels = panel([0.9, 0.8, 0.7, 0.6])
    assert (
        "[" not in title
        and "epoch" in title
        and any(label.startswith("best grid cell (0, 0.5)") for label in labels)
    )
    _, labels = panel([0.9, 0.9, 0.9, 0.9])
    assert not any(label.startswith("best grid cell") for label in labels)
    assert "no best cell marked: 4 grid cells tie at 90.00" in labels


def test_trials_over_the_grid_star_no_trial_when_several_tie(tmp_path, monkeypatch):
    import matplotlib.figure

    config = {"grid": {"mean": [0.0, 1.0], "std": [0.5, 1.0]}, "references": {}}
    results = [make_result(0.9, mean_label=m, std_label=s, mean=[float(m)], std=[float(s)])
               for m, s in [("0", "0.5"), ("0", "1"), ("1", "0.5"), ("1", "1")]]  # fmt: skip
    cells = table.cells_table(results, {"lenet": cell_roles("lenet", config)})
    legends = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: legends.append(
        [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]))  # fmt: skip

    def trials(values):
        return pd.DataFrame({"state": "COMPLETE", "value": values, "params_mean": [0.2, 0.4, 0.6][: len(values)],
                             "params_std": 0.3, "user_attrs_source": "optuna"})  # fmt: skip

    plots.trials_over_grid(cells, trials([0.9, 0.9]), "lenet", tmp_path / "tied.png")
    plots.trials_over_grid(cells, trials([0.95, 0.9]), "lenet", tmp_path / "one.png")
    assert "no best trial marked: 2 trials tie at 90.00%" in legends[0]
    assert any(label.startswith("best trial (0.2, 0.3): 95.00%") for label in legends[1])
