import math

import pytest

from normsweep import cells


def test_names_read_well_and_round_trip():
    assert cells.format_value(0.1307) == "0.1307"
    assert cells.format_value(-0.5714285714285714) == "-0.571429"
    assert cells.format_value(2.0) == "2"
    assert cells.format_value(-0.0) == "0"
    assert cells.format_value(None) == "none"
    assert cells.format_value([0.485, 0.456, 0.406]) == "0.485,0.456,0.406"
    assert cells.format_value([0.5, 0.5, 0.5]) == "0.5"  # equal channels: one number
    assert cells.parse_value("0.485,0.456,0.406") == (0.485, 0.456, 0.406)
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
