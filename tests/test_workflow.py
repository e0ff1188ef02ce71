"""The real workflow, end to end, with the real snakemake on a tiny grid: one run of the
tiny study that most tests of this file read."""

import json
import os

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

from conftest import data_dir, job_counts, snakemake, tiny_config


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2x2 grid plus 3 references, run once for the tests of this module."""
    work = tmp_path_factory.mktemp("study")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    run = snakemake("--cores", "2", "--directory", str(work), cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work, run


def test_the_tables_hold_every_cell(study):
    work, _ = study
    cells = pd.read_parquet(work / "results/tiny/lenet/tables/cells.parquet")
    assert len(cells) == 4 + 3
    assert cells["is_grid"].sum() == 4
    assert set(cells["reference"]) == {"", "none", "classic", "dataset"}
    assert cells["final_accuracy"].between(0, 1).all()
    assert (cells["status"] == "ok").all() and (cells["n_train"] == 300).all()
    csv = pd.read_csv(work / "results/tiny/lenet/tables/cells.csv")
    assert csv["final_accuracy"].tolist() == pytest.approx(cells["final_accuracy"].tolist())
    epochs = pd.read_parquet(work / "results/tiny/lenet/tables/epochs.parquet")
    assert len(epochs) == 7 and (epochs["epoch"] == 1).all()


def test_docs_outputs_names_every_column_the_tables_have(study):
    """Docs/outputs.md lists every column of cells, epochs and cell_stats."""
    import re
    from pathlib import Path

    work, _ = study
    text = (Path(__file__).resolve().parents[1] / "docs/outputs.md").read_text()
    named = set(re.findall(r"`([a-z0-9_<>]+)`", text))
    named |= {
        n.replace("<metric>", m) for n in named for m in ("epoch1_accuracy", "epochs_to_threshold", "auc")
    }
    for name in ("cells", "epochs", "cell_stats"):
        columns = pd.read_parquet(work / f"results/tiny/lenet/tables/{name}.parquet").columns
        assert not sorted(set(columns) - named), f"docs/outputs.md lacks {name} columns"


def test_dataset_cell_trains_with_the_exact_statistics(study):
    work, _ = study
    stats = json.loads((data_dir(work, tiny_config()) / "stats.json").read_text())
    cell = json.loads((work / "results/tiny/lenet/cells/mean~dataset/std~dataset/seed~1998.json").read_text())
    assert cell["mean"] == stats["mean"] and cell["std"] == stats["std"]
    assert stats["n_images"] == 6000 and 0.12 < stats["mean"][0] < 0.14


def test_the_summary_names_best_worst_and_references(study):
    work, _ = study
    summary = json.loads((work / "results/tiny/lenet/tables/summary.json").read_text())["lenet"]
    assert summary["best"]["accuracy"] >= summary["worst"]["accuracy"]
    assert set(summary["references"]) == {"none", "classic", "dataset"}
    assert "best grid cell" in (work / "results/tiny/lenet/tables/summary.md").read_text()


def test_the_run_answers_how_fast_cells_learn(study):
    work, _ = study
    cells = pd.read_parquet(work / "results/tiny/lenet/tables/cells.parquet")
    assert {"epoch1_accuracy", "epochs_to_relative", "epochs_to_threshold", "auc"} <= set(cells.columns)
    ok = cells[cells["status"] == "ok"]
    # one epoch: the cells within 99% of the best cell's final accuracy reach it in epoch 1, the
    # others never (NaN), whatever their own final accuracy (a cell near chance is not "fastest")
    level = 0.99 * ok["final_accuracy"].max()
    assert (ok["threshold_level"] == level).all()
    reached = ok["final_accuracy"] >= max(level, 0.2)
    assert (ok.loc[reached, "epochs_to_threshold"] == 1).all() and ok.loc[
        ~reached, "epochs_to_threshold"
    ].isna().all()
    assert (ok["auc"] == ok["final_accuracy"]).all() and (ok["epoch1_accuracy"] == ok["final_accuracy"]).all()
    stats = pd.read_parquet(work / "results/tiny/lenet/tables/cell_stats.parquet")
    assert {"epochs_to_threshold_mean", "epochs_to_threshold_p_adjusted", "auc_differs"} <= set(stats.columns)
    assert (
        "**How fast it learns.** lenet, epochs to reach 99% of the best cell's final accuracy"
        in (work / "results/tiny/lenet/tables/summary.md").read_text()
    )
    height, width = mpimg.imread(work / "results/tiny/plots/heatmap.png").shape[:2]
    assert width > 3 * height  # three panels: final, epoch-1 accuracy, epochs to the threshold


def test_the_figures_are_real_images(study):
    work, _ = study
    for name in ("heatmap", "histogram", "curves"):
        image = mpimg.imread(work / "results" / "tiny" / "plots" / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_each_cell_has_its_own_log_with_progress(study):
    work, _ = study
    text = (work / "logs/tiny/lenet/train/mean~0/std~0.1/seed~1998.log").read_text()
    assert "epoch 1/1" in text and "test accuracy" in text


def test_finished_cells_are_never_recomputed(study):
    work, _ = study
    again = snakemake("-n", "--directory", str(work), cwd=work)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # one more mean: only its two cells are new
    bigger = tiny_config(mean=[0.0, 1.0, 2.0], std=[0.1, 1.0])
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(bigger))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
    assert plan.returncode == 0, plan.stderr
    assert job_counts(plan.stdout)["train_cell"] == 2, plan.stdout
    # a fresh clone or an upgrade: every rule script is newer than every result
    for path in (work / "results").rglob("*"):
        os.utime(path, (path.stat().st_atime - 7200, path.stat().st_mtime - 7200))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
    # study_config rewrites the (changed) config for the report; no finished cell reruns
    assert job_counts(plan.stdout) == {
        "train_cell": 2,
        "aggregate": 1,
        "plots": 1,
        "study_config": 1,
        "all": 1,
        "total": 6,
    }, plan.stdout
    assert job_counts(plan.stdout).get("train_cell") == 2, plan.stdout + plan.stderr
    # allowing a download is a param of the data check (which runs again), but the data set
    # statistics it leads to are the same numbers: no finished cell reruns
    fetching = tiny_config()
    fetching["models"]["lenet"]["download"] = True
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(fetching))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
    counts = job_counts(plan.stdout)
    assert counts["check_data"] == 1 and "train_cell" not in counts, plan.stdout
    # threads and device change how a cell runs, not what it is: nothing retrains
    faster = tiny_config()
    faster["models"]["lenet"]["training"].update(threads=2, device="cpu")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(faster))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
    assert job_counts(plan.stdout) == {"study_config": 1, "all": 1, "total": 2}, (
        plan.stdout
    )  # the config's copy
    # what a cell computes does retrain it
    slower = tiny_config()
    slower["models"]["lenet"]["training"]["lr"] = 0.5
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(slower))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
    assert job_counts(plan.stdout)["train_cell"] == 7, plan.stdout
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))


def test_packs_give_the_same_tables_and_pack_only_cells_still_to_do(study, tmp_path):
    """cluster.pack: 4 against the one-job-per-cell run of the same study (the module's)."""
    work, _ = study
    cfg = tiny_config()
    cfg["cluster"] = {"pack": 4}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert job_counts(plan.stdout)["train_pack"] == 2 and "train_cell" not in job_counts(plan.stdout), (
        plan.stdout
    )
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    one = pd.read_parquet(work / "results/tiny/lenet/tables/cells.parquet").set_index(
        ["mean_label", "std_label"]
    )
    packed = pd.read_parquet(tmp_path / "results/tiny/lenet/tables/cells.parquet").set_index(
        ["mean_label", "std_label"]
    )
    assert sorted(packed.index) == sorted(one.index)
    # 5 steps of 64 on 300 images: the same accuracies to the last digit here (the tolerance
    # of longer runs is in tests/test_pack.py)
    assert packed["final_accuracy"].to_dict() == pytest.approx(one["final_accuracy"].to_dict(), abs=0.01)
    assert sorted(packed["pack_size"]) == [3, 3, 3, 4, 4, 4, 4]
    tables = tmp_path / "results/tiny/lenet/tables"
    first = {
        n: (tables / n).read_text() for n in ("cells.csv", "cell_stats.csv", "summary.json", "summary.md")
    }
    assert (tmp_path / "logs/tiny/lenet/train/mean~1/std~1/seed~1998.log").read_text().count("epoch 1/1") == 1
    # a new mean: one pack of its two cells; no finished cell is trained (or touched) again
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "results/tiny/lenet/cells").rglob("*.json")}
    bigger = tiny_config(mean=[0.0, 1.0, 2.0], std=[0.1, 1.0])
    bigger["cluster"] = {"pack": 4}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(bigger))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert job_counts(plan.stdout)["train_pack"] == 1 and "train_cell" not in job_counts(plan.stdout), (
        plan.stdout
    )
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert len(pd.read_parquet(tmp_path / "results/tiny/lenet/tables/cells.parquet")) == 9
    again = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    # the new mean dropped again: its cells' pack lists them, but the tables, statistics and
    # summary are those of the study configured that way from the start
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0 and "train_pack" not in run.stdout + run.stderr, run.stderr[-3000:]
    assert {n: (tables / n).read_text() for n in first} == first
    # back to one job per cell: the packed cells are finished cells, not cells without history
    bigger["cluster"] = {"pack": 1}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(bigger))
    again = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    # the config's copy, and the tables of the grid with the mean again: no training job
    assert set(job_counts(again.stdout)) == {"study_config", "aggregate", "plots", "all", "total"}, (
        again.stdout
    )
    (tmp_path / "results/tiny/lenet/cells/mean~2/std~1/seed~1998.json").unlink()  # a cell deleted to redo it
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert job_counts(plan.stdout)["train_cell"] == 1 and "train_pack" not in job_counts(plan.stdout), (
        plan.stdout
    )
    # a table mixing packed cells and a cell trained alone says so: tests/test_table.py


def test_a_failing_cell_names_its_log(study, tmp_path):
    work, _ = study
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    broken = tmp_path / "broken"
    broken.mkdir()
    cfg = tiny_config(mean=[5.0], std=[1.0])
    cfg["models"]["lenet"]["references"] = {}
    cfg["models"]["lenet"].pop("baseline")
    cfg["models"]["lenet"]["training"]["device"] = "cuda:0"  # no GPU here: the cell fails
    (broken / "config").mkdir()
    (broken / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "1", "--directory", str(broken), cwd=broken)
    if "cuda" in run.stdout and run.returncode == 0:
        pytest.skip("this machine has a GPU")
    assert run.returncode != 0
    log = "logs/tiny/lenet/train/mean~5/std~1/seed~1998.log"
    assert log in run.stdout + run.stderr
    assert "no CUDA GPU" in (broken / log).read_text()


def test_the_report_is_self_contained_with_figures_tables_and_config(study):
    work, _ = study
    run = snakemake("--report", "report.html", "--directory", str(work), cwd=work)
    assert run.returncode == 0, run.stderr[-2000:]
    html = (work / "report.html").read_text()
    assert len(html) > 100_000
    for needle in (
        "heatmap.png",
        "histogram.png",
        "curves.png",
        "cells.csv",
        "cell_stats.csv",
        "summary.md",
        "config.yaml",
        "Welch",
    ):
        assert needle in html, needle


def test_fold_target_shows_the_first_layer_absorbs_any_normalization(study):
    work, _ = study
    run = snakemake("fold", "--cores", "1", "--directory", str(work), cwd=work)
    assert run.returncode == 0, run.stderr[-2000:]
    check = json.loads((work / "results/tiny/lenet/fold/check.json").read_text())
    assert len(check["cells"]) == 6  # the 2 x 2 grid, classic and dataset (none has nothing to fold)
    assert max(c["max_abs_diff"] for c in check["cells"]) < 1e-3


def test_a_truncated_cell_result_is_named_with_the_fix(study, tmp_path):
    work, _ = study
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    victim = work / "results/tiny/lenet/cells/mean~1/std~0.1/seed~1998.json"
    intact = victim.read_text()
    try:
        victim.write_text(intact[: len(intact) // 3])  # a full disk, an interrupted copy
        os.utime(
            victim, (victim.stat().st_atime + 60, victim.stat().st_mtime + 60)
        )  # aggregate must run again
        run = snakemake("--cores", "1", "--directory", str(work), cwd=work)
        assert run.returncode != 0
        log = (work / "logs/tiny/lenet/aggregate.log").read_text()
        assert str(victim.relative_to(work)) in log and "delete it and rerun snakemake" in log
        assert "Traceback" not in log
        # the fix the message gives works: delete, rerun, only that cell trains again
        victim.unlink()
        plan = snakemake("-n", "--quiet", "rules", "--directory", str(work), cwd=work)
        assert job_counts(plan.stdout)["train_cell"] == 1, plan.stdout
    finally:
        victim.write_text(intact)


def test_init_study_target_scales_conv1_and_draws_its_map(study):
    """`snakemake init` in the study's folder: one cell per (weight, bias) factor of conv1's
    initial values, its table and map; the grid's finished cells are not touched."""
    work, _ = study
    cfg = tiny_config()
    cfg["models"]["lenet"]["init_study"] = {
        "mean": -1,
        "std": 0.1,
        "weight": {"start": 0.1, "stop": 10, "num": 2},
        "bias": [1.0, 5.0],
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    grid = {p: p.stat().st_mtime_ns for p in (work / "results/tiny/lenet/cells").rglob("*.json")}
    try:
        run = snakemake("init", "--cores", "2", "--directory", str(work), cwd=work)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    table = pd.read_csv(work / "results/tiny/lenet/init/table.csv")
    assert sorted(zip(table["init_weight"], table["init_bias"], strict=True)) == [
        (0.1, 1.0),
        (0.1, 5.0),
        (10.0, 1.0),
        (10.0, 5.0),
    ]
    assert (table["mean"].astype(str) == "-1").all() and (table["std"].astype(str) == "0.1").all()
    assert table["final_accuracy"].nunique() > 1  # the factors change what is learned
    assert mpimg.imread(work / "results/tiny/lenet/init/heatmap.png").shape[0] > 300
    assert {p: p.stat().st_mtime_ns for p in grid} == grid  # the grid's cells were not trained again
