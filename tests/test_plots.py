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
