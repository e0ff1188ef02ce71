import json
import math
import os

import pytest

from normsweep.core import results


def make_result(accuracy=0.98, status=results.STATUS_OK, **overrides):
    base = dict(
        model="lenet",
        dataset="mnist",
        mean_label="0.5",
        std_label="0.25",
        mean=[0.5],
        std=[0.25],
        seed=1,
        status=status,
        final_accuracy=accuracy,
        best_accuracy=accuracy,
        epochs_requested=1,
        n_train=100,
        n_test=50,
        batch_size=64,
        test_batch_size=1000,
        lr=1.0,
        wall_seconds=1.5,
        device="cpu",
        device_name="cpu (1 threads)",
        epochs=[results.EpochRecord(1, accuracy, 0.1, 0.2, 1.0, 1.2)],
        versions={"torch": "2.14.1"},
    )
    base.update(overrides)
    return results.CellResult(**base)


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "a" / "cell.json"
    original = make_result()
    results.write_result(path, original)
    assert results.read_result(path) == original


def test_nan_is_written_as_null_and_read_back_as_nan(tmp_path):
    path = tmp_path / "cell.json"
    diverged = make_result(
        math.nan,
        results.STATUS_DIVERGED,
        epochs=[results.EpochRecord(1, math.nan, math.nan, math.nan, 1.0, 0.5)],
    )
    results.write_result(path, diverged)
    raw = json.loads(path.read_text())  # strict JSON: no NaN token
    assert raw["final_accuracy"] is None and raw["status"] == "diverged"
    back = results.read_result(path)
    assert math.isnan(back.final_accuracy) and math.isnan(back.epochs[0].train_loss)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "cell.json"
    results.write_result(path, make_result(0.5))

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        results.write_result(path, make_result(0.9))
    assert results.read_result(path).final_accuracy == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_foreign_or_old_files_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(ValueError, match="delete the file to recompute"):
        results.read_result(path)


def test_versions_are_recorded():
    versions = results.package_versions()
    assert {"python", "torch", "torchvision", "numpy", "normsweep"} <= set(versions)
