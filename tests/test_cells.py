import math

import pytest

from normsweep.core import cells
from normsweep.study import migrate


def test_names_read_well_and_round_trip():
    assert cells.format_value(0.1307) == "0.1307"
    assert cells.format_value(-0.5714285714285714) == "-0.571429"
    assert cells.format_value(2.0) == "2"
    assert cells.format_value(-0.0) == "0"
    assert cells.format_value(None) == "none"
    assert cells.format_value([0.485, 0.456, 0.406]) == "0.485_0.456_0.406"  # no comma (SLURM)
    assert cells.format_value([0.5, 0.5, 0.5]) == "0.5"  # equal channels: one number
    assert cells.parse_value("0.485_0.456_0.406") == (0.485, 0.456, 0.406)
    assert cells.parse_value("0.485,0.456,0.406") == (0.485, 0.456, 0.406)  # older versions' names
    assert cells.parse_value("none") is None
    assert cells.parse_value("dataset") == "dataset"
    for value in (0.1307, -2.0, 1e-5, 2.2857142857):
        assert cells.parse_value(cells.format_value(value)) == pytest.approx(value, rel=1e-5)


def test_bad_values_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not a normalization value"):
        cells.parse_value("abc")
    with pytest.raises(ValueError, match="finite"):
        cells.format_value(math.nan)
    with pytest.raises(ValueError, match="std must be > 0"):
        cells.make_cell("lenet", 0.0, 0.0, 1)
    with pytest.raises(ValueError, match="both the mean and the std"):
        cells.make_cell("lenet", "none", 1.0, 1)


def test_notebook_grid_has_15x15_cells_per_seed_with_its_extremes():
    grid = {"mean": {"start": -2, "stop": 3, "num": 15}, "std": {"start": 0.02, "stop": 2, "num": 15}}
    found = cells.grid_cells("lenet", grid, [1998, 1999])
    assert len(found) == 15 * 15 * 2
    names = {(c.mean, c.std) for c in found}
    assert ("2.28571", "0.2") in names  # the notebook's best cell
    assert ("-0.571429", "0.02") in names  # and its worst
    assert found[0].result_path("demo") == "results/demo/lenet/cells/mean~-2/std~0.02/seed~1998.json"


def test_adding_grid_points_keeps_the_names_of_existing_cells():
    before = cells.grid_cells("lenet", {"mean": [0.0, 1.0], "std": [0.5]}, [1])
    after = cells.grid_cells("lenet", {"mean": [0.0, 0.5, 1.0], "std": [0.5, 1.0]}, [1])
    assert {c.result_path("s") for c in before} < {c.result_path("s") for c in after}


def test_study_cells_add_references_without_duplicates():
    config = {
        "grid": {"mean": [0.0, 1.0], "std": [1.0]},
        "references": {"none": "none", "unit": {"mean": 0, "std": 1}, "dataset": "dataset"},
        "seeds": [1],
    }
    found = cells.study_cells("lenet", config)
    labels = sorted((c.mean, c.std) for c in found)
    assert labels == [("0", "1"), ("1", "1"), ("dataset", "dataset"), ("none", "none")]


def test_a_cells_checkpoint_path_follows_from_its_result_path():
    cell = cells.Cell("lenet", "0.1307", "0.3081", 1998)
    assert cells.checkpoint_of(cell.result_path("s")) == cell.checkpoint_path("s")


def test_old_comma_names_are_found_and_renamed_once_keeping_every_file(tmp_path):
    """Older versions joined channels with commas, which SLURM jobs cannot carry: a study's
    files move to the new names, labels inside its files follow, its pack keeps its cells."""
    import json

    old_mean, old_std = "0.485,0.456,0.406", "0.229,0.224,0.225"
    cell_dir = tmp_path / f"results/s/resnet18/cells/mean~{old_mean}/std~{old_std}"
    cell_dir.mkdir(parents=True)
    result_rel = f"results/s/resnet18/cells/mean~{old_mean}/std~{old_std}/seed~1998.json"
    (tmp_path / result_rel).write_text(
        json.dumps({"mean_label": old_mean, "std_label": old_std, "pack": "x"})
    )
    log_dir = tmp_path / f"logs/s/resnet18/train/mean~0.5/std~{old_std}"
    log_dir.mkdir(parents=True)
    (log_dir / "seed~1998.log").write_text("epoch 1/1: test accuracy 0.5, 1,000 images\n")
    old_pack = cells.Pack("resnet18", 1998, (cells.Cell("resnet18", old_mean, old_std, 1998),))
    pack_file = tmp_path / cells.results_dir("s") / cells.PACK_RESULT.format(**old_pack.wildcards)
    pack_file.parent.mkdir(parents=True)
    pack_file.write_text(json.dumps({"pack": old_pack.id, "seed": 1998, "members": [[old_mean, old_std]],
                                     "results": [result_rel]}))  # fmt: skip
    journal = tmp_path / "results/s/resnet18/optuna/journal.log"
    journal.parent.mkdir(parents=True)
    journal.write_text(
        json.dumps({"user_attrs": {"cell": f"{old_mean}|{old_std}|1998"}, "v": [0.5, 1.5]}) + "\n"
    )

    assert len(cells.old_channel_names("s", tmp_path)) == 2  # the cell's mean folder and the log's std folder
    assert len(cells.old_channel_names("s", tmp_path, models=["resnet18"])) == 2
    assert cells.old_channel_names("s", tmp_path, models=[]) == []  # a study of one-channel models only
    renamed = migrate.rename_old_channel_names("s", tmp_path)
    assert cells.old_channel_names("s", tmp_path) == []
    new = cells.make_cell("resnet18", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 1998)
    result = json.loads((tmp_path / new.result_path("s")).read_text())
    assert (
        (result["mean_label"], result["std_label"])
        == (new.mean, new.std)
        == ("0.485_0.456_0.406", "0.229_0.224_0.225")
    )
    assert (
        (tmp_path / "logs/s/resnet18/train/mean~0.5/std~0.229_0.224_0.225/seed~1998.log")
        .read_text()
        .endswith("1,000 images\n")
    )  # a log's text is left as it was
    assert (
        json.loads(journal.read_text().strip())["user_attrs"]["cell"]
        == "0.485_0.456_0.406|0.229_0.224_0.225|1998"
    )
    packs = [p for p in (tmp_path / "results/s/resnet18/packs/seed~1998").glob("pack~*.json")]
    new_pack = cells.Pack("resnet18", 1998, (new,))
    assert [p.name for p in packs] == [f"pack~{new_pack.id}.json"] and new_pack.id != old_pack.id
    assert result["pack"] == new_pack.id
    assert len(renamed) == 4  # the cell's std and mean folders, the log's std folder, the pack's file
    assert migrate.rename_old_channel_names("s", tmp_path) == []  # once only
