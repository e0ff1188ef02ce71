import matplotlib.image as mpimg
import pandas as pd
from test_results import make_result

from normsweep import plots, table
from normsweep.cells import cell_roles


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
    """Issue 31: titles read "1 epoch, 300 training images" (not "epochs [1], [300]"); when
    several grid cells tie for best, none gets the star and the legend says so."""
    import matplotlib.pyplot as plt

    from normsweep.heatmaps import heatmap_panel

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
