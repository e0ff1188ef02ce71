"""The real workflow, end to end, with the real snakemake on a tiny grid."""

import json
import os
import signal
import subprocess
import time

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT, SMALL_MNIST, snakemake, test_config
from normsweep.cells import data_key


def tiny_config(**grid):
    """.test/config.yaml, with another grid when one is given."""
    config = test_config()
    if grid:
        config["models"]["lenet"]["grid"] = grid
    return config


def data_dir(work, config: dict, model: str = "lenet"):
    """results/<study>/<model>/data/<key>/ of a config (the key: normsweep.cells.data_key)."""
    block = config["models"][model]
    return work / "results" / config["study"] / model / "data" / data_key(block, model != "lenet")


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake plan."""
    rows = [line.split() for line in output.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2x2 grid plus 3 references, run once for the tests of this module."""
    work = tmp_path_factory.mktemp("study")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    run = snakemake("--cores", "2", "--directory", str(work), cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work, run


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_dataset_cell_trains_with_the_exact_statistics(study):
    work, _ = study
    stats = json.loads((data_dir(work, tiny_config()) / "stats.json").read_text())
    cell = json.loads((work / "results/tiny/lenet/cells/mean~dataset/std~dataset/seed~1998.json").read_text())
    assert cell["mean"] == stats["mean"] and cell["std"] == stats["std"]
    assert stats["n_images"] == 6000 and 0.12 < stats["mean"][0] < 0.14


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_the_summary_names_best_worst_and_references(study):
    work, _ = study
    summary = json.loads((work / "results/tiny/lenet/tables/summary.json").read_text())["lenet"]
    assert summary["best"]["accuracy"] >= summary["worst"]["accuracy"]
    assert set(summary["references"]) == {"none", "classic", "dataset"}
    assert "best grid cell" in (work / "results/tiny/lenet/tables/summary.md").read_text()


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_the_run_answers_how_fast_cells_learn(study):
    work, _ = study
    cells = pd.read_parquet(work / "results/tiny/lenet/tables/cells.parquet")
    assert {"epoch1_accuracy", "epochs_to_relative", "epochs_to_threshold", "auc"} <= set(cells.columns)
    ok = cells[cells["status"] == "ok"]
    assert (ok["epochs_to_threshold"] == 1).all()  # one epoch: 99% of the final accuracy at epoch 1
    assert (ok["auc"] == ok["final_accuracy"]).all() and (ok["epoch1_accuracy"] == ok["final_accuracy"]).all()
    stats = pd.read_parquet(work / "results/tiny/lenet/tables/cell_stats.parquet")
    assert {"epochs_to_threshold_mean", "epochs_to_threshold_p_adjusted", "auc_differs"} <= set(stats.columns)
    assert (
        "**How fast it learns.** lenet, epochs to reach 99% of the final accuracy"
        in (work / "results/tiny/lenet/tables/summary.md").read_text()
    )
    height, width = mpimg.imread(work / "results/tiny/plots/heatmap.png").shape[:2]
    assert width > 3 * height  # three panels: final, epoch-1 accuracy, epochs to the threshold


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_the_figures_are_real_images(study):
    work, _ = study
    for name in ("heatmap", "histogram", "curves"):
        image = mpimg.imread(work / "results" / "tiny" / "plots" / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_each_cell_has_its_own_log_with_progress(study):
    work, _ = study
    text = (work / "logs/tiny/lenet/train/mean~0/std~0.1/seed~1998.log").read_text()
    assert "epoch 1/1" in text and "test accuracy" in text


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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
    # threads and device change how a cell runs, not what it is: nothing retrains (issue 21)
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


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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
    # back to one job per cell: the packed cells are finished cells, not cells without history
    bigger["cluster"] = {"pack": 1}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(bigger))
    again = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert set(job_counts(again.stdout)) == {"study_config", "all", "total"}, (
        again.stdout
    )  # the config's copy
    (tmp_path / "results/tiny/lenet/cells/mean~2/std~1/seed~1998.json").unlink()  # a cell deleted to redo it
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert job_counts(plan.stdout)["train_cell"] == 1 and "train_pack" not in job_counts(plan.stdout), (
        plan.stdout
    )


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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


def test_data_check_fetches_nothing_when_files_are_there_and_refuses_bad_ones(tmp_path, small_mnist_copy):
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    cfg = tiny_config()
    cfg["models"]["lenet"].update({"data": str(small_mnist_copy), "download": True})
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = {p.name: p.stat().st_mtime_ns for p in (small_mnist_copy / "MNIST" / "raw").iterdir()}
    stats = data_dir(work, cfg) / "stats.json"
    run = snakemake("--cores", "1", "--directory", str(work), str(stats.relative_to(work)), cwd=work)
    assert run.returncode == 0, run.stderr[-2000:]
    after = {p.name: p.stat().st_mtime_ns for p in (small_mnist_copy / "MNIST" / "raw").iterdir()}
    assert after == before  # checked, not fetched, not rewritten
    checked = json.loads((stats.parent / "files.json").read_text())
    assert set(checked["md5"]) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }

    victim = small_mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(b"not mnist")
    (work / "results").rename(tmp_path / "old-results")
    run = snakemake("--cores", "1", "--directory", str(work), cwd=work)
    assert run.returncode != 0
    assert "t10k-labels-idx1-ubyte.gz: md5" in run.stdout + run.stderr
    assert victim.read_bytes() == b"not mnist"  # the user's file is left as it is
    assert not list((work / "results").rglob("seed~*.json"))  # no cell ran on bad data


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
def test_fold_target_shows_the_first_layer_absorbs_any_normalization(study):
    work, _ = study
    run = snakemake("fold", "--cores", "1", "--directory", str(work), cwd=work)
    assert run.returncode == 0, run.stderr[-2000:]
    check = json.loads((work / "results/tiny/lenet/fold/check.json").read_text())
    assert len(check["cells"]) == 6  # the 2 x 2 grid, classic and dataset (none has nothing to fold)
    assert max(c["max_abs_diff"] for c in check["cells"]) < 1e-3


def test_reproduce_compares_reference_cells_with_the_notebook(tmp_path):
    cfg = tiny_config()
    cfg["compare_notebook"] = True
    cfg["models"]["lenet"].update(
        {
            "grid": None,
            "seeds": [1998, 1999],
            "references": {"classic": {"mean": 0.1307, "std": 0.3081}, "none": "none"},
        }
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results/tiny/lenet/tables/notebook.csv")
    assert sorted(table["cell"]) == ["classic", "none"]
    assert (table["n_seeds"] == 2).all() and (table["notebook"] == [0.9925, 0.9931]).all()
    text = (tmp_path / "results/tiny/lenet/tables/notebook.md").read_text()
    assert "| classic | 0.1307 | 0.3081 | 0.9925 |" in text
    assert set(table["within_seed_noise"]) <= {True, False}  # two seeds: a verdict for each
    assert (table["prediction_high"] > table["prediction_low"]).all()


def test_init_study_target_scales_conv1_and_draws_its_map(tmp_path):
    cfg = tiny_config()
    cfg["models"]["lenet"]["init_study"] = {
        "mean": -1,
        "std": 0.1,
        "weight": {"start": 0.1, "stop": 10, "num": 2},
        "bias": [1.0, 5.0],
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("init", "--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results/tiny/lenet/init/table.csv")
    assert sorted(zip(table["init_weight"], table["init_bias"], strict=True)) == [
        (0.1, 1.0),
        (0.1, 5.0),
        (10.0, 1.0),
        (10.0, 5.0),
    ]
    assert (table["mean"].astype(str) == "-1").all() and (table["std"].astype(str) == "0.1").all()
    assert table["final_accuracy"].nunique() > 1  # the factors change what is learned
    assert mpimg.imread(tmp_path / "results/tiny/lenet/init/heatmap.png").shape[0] > 300
    assert not list((tmp_path / "results/tiny/lenet/cells").glob("*"))  # the grid was not run


def test_resnet18_grid_on_the_tiny_image_folder(tmp_path):
    cfg = test_config("resnet.yaml")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads((data_dir(tmp_path, cfg, "resnet18") / "stats.json").read_text())
    assert len(stats["mean"]) == 3 and stats["n_images"] == 30  # exact per-channel statistics
    cells = pd.read_parquet(tmp_path / "results/rn/resnet18/tables/cells.parquet")
    assert len(cells) == 4 and (cells["n_train"] == 30).all() and (cells["n_test"] == 12).all()
    imagenet = json.loads(
        (
            tmp_path / "results/rn/resnet18/cells/mean~0.485_0.456_0.406/std~0.229_0.224_0.225/seed~1998.json"
        ).read_text()
    )
    assert imagenet["mean"] == [0.485, 0.456, 0.406] and imagenet["lr"] == 0.01
    assert (data_dir(tmp_path, cfg, "resnet18") / "train-r40-c32.pt").exists()  # decoded once, cached
    assert mpimg.imread(tmp_path / "results/rn/plots/heatmap.png").shape[0] > 300
    # (the RGB Optuna study: tests/test_slurm.py::test_per_channel_cells_and_an_rgb_round_run_as_gpu_jobs)
    # a new image size: the data rules see it in their params, make the new cache, and the
    # cells train again on it (issue 10: before, every cell failed with "no tensor cache")
    cfg["models"]["resnet18"]["image"] = {"resize": 48, "crop": 40}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/rn/resnet18/tables/cells.parquet"
    run = snakemake("--cores", "2", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (data_dir(tmp_path, cfg, "resnet18") / "train-r48-c40.pt").exists()
    files = json.loads((data_dir(tmp_path, cfg, "resnet18") / "files.json").read_text())
    assert files["image"] == {"resize": 48, "crop": 40}
    resized = pd.read_parquet(tmp_path / target)
    assert len(resized) == 4 and (resized["status"] == "ok").all()
    again = snakemake("-n", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    # back to the first size: its data files are still there, and every cell trains again
    cfg["models"]["resnet18"]["image"] = {"resize": 40, "crop": 32}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    back = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert job_counts(back.stdout)["train_cell"] == 4 and "check_data" not in job_counts(back.stdout), (
        back.stdout
    )


def test_a_users_config_starts_from_the_notebook_not_from_the_demo(tmp_path, demo_folder):
    """--configfile replaces the demo (config/config.yaml) instead of merging into it."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "study": "mine",
                "models": {"lenet": {"data": str(SMALL_MNIST), "grid": {"mean": [0.0, 1.0], "std": [0.5]}}},
            }
        )
    )
    # from the repository, where config/config.yaml is the demo, as a user would run it
    plan = snakemake(
        "-n", "--quiet", "rules", "--configfile", str(mine), "--directory", str(tmp_path), cwd=ROOT
    )
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert job_counts(plan.stdout)["train_cell"] == 2, plan.stdout  # the grid only: no demo references
    run = snakemake(
        "--cores",
        "1",
        "--configfile",
        str(mine),
        "--directory",
        str(tmp_path),
        "results/mine/config.yaml",
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    used = yaml.safe_load((tmp_path / "results/mine/config.yaml").read_text())
    lenet = used["models"]["lenet"]
    assert lenet["training"]["train_subset"] is None and lenet["training"]["test_subset"] is None
    assert lenet["training"]["epochs"] == 30 and lenet["references"] == {} and lenet["seeds"] == [1998]
    # and with no --configfile, the workflow profile still picks the demo
    demo = snakemake("-n", "--quiet", "rules", cwd=demo_folder)
    assert demo.returncode == 0 and job_counts(demo.stdout)["train_cell"] == 5 * 5 + 4, demo.stdout


@pytest.mark.xdist_group("tiny-study")  # one run of the module\'s study, on one worker
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


def test_optuna_refines_in_rounds_survives_a_kill_and_grows_with_n_trials(tmp_path):
    """The refinement after the grid, its trials ordinary cells; kill -9 of snakemake (and its
    running trial cell) mid-epoch in a round: after --unlock and a rerun, the cell resumes after
    its last finished epoch and the study holds exactly the warm start plus n_trials finished
    trials, one per asked trial; more trials later run only the new rounds."""
    cfg = tiny_config(mean=[0.0, 1.0], std=[0.5])
    block = cfg["models"]["lenet"]
    block["references"] = {"classic": {"mean": 0.1307, "std": 0.3081}, "none": "none"}
    block["training"].update(epochs=2, train_subset=1500, deterministic=True)
    block["optuna"] = {"n_trials": 3, "batch": 2, "mean": [-1, 2], "std": [0.05, 1], "retrain_seeds": [1, 2]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    counts = job_counts(plan.stdout)
    assert counts["optuna_ask"] == 2 and counts["optuna_tell"] == 2, plan.stdout  # rounds of 2 and 1 trials
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--profile",
               str(ROOT / "profiles" / "local"), "--cores", "1", "--directory", str(tmp_path)]  # fmt: skip
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # fmt: skip
    checkpoints = tmp_path / "results/tiny/lenet/checkpoints"
    out = tmp_path / "results/tiny/lenet/optuna"

    def trial_checkpoints():  # of a trial cell (the round has been asked), not of a configured cell
        if not (out / "round~0/asked.json").exists():
            return []
        asked = {
            (t["mean"], t["std"]) for t in json.loads((out / "round~0/asked.json").read_text())["trials"]
        }
        return [p for p in checkpoints.rglob("*.pt") if (p.parts[-3][5:], p.parts[-2][4:]) in asked]

    deadline = time.time() + 600
    while time.time() < deadline and not trial_checkpoints():
        assert first.poll() is None, "snakemake ended before a trial cell saved a checkpoint"
        time.sleep(0.1)
    killed = trial_checkpoints()
    assert killed, "no trial cell saved a checkpoint in time"
    os.killpg(first.pid, signal.SIGKILL)  # snakemake and the cell it runs, mid-epoch 2
    first.wait()
    result = tmp_path / "results/tiny/lenet/cells" / killed[0].relative_to(checkpoints).with_suffix(".json")
    log = tmp_path / "logs/tiny/lenet/train" / killed[0].relative_to(checkpoints).with_suffix(".log")
    assert not result.exists()
    locked = snakemake("--cores", "1", "--directory", str(tmp_path), cwd=tmp_path)  # as the README says
    assert locked.returncode != 0 and "lock" in (locked.stdout + locked.stderr).lower()
    assert snakemake("--unlock", "--directory", str(tmp_path), cwd=tmp_path).returncode == 0
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    text = log.read_text()  # the rerun's log (snakemake starts a job's log afresh)
    assert "resumed from" in text and "after epoch 1" in text
    assert "epoch 1/2" not in text and text.count("epoch 2/2") == 1  # only the interrupted epoch again

    rounds = [json.loads((out / f"round~{r}/asked.json").read_text())["trials"] for r in (0, 1)]
    assert [len(r) for r in rounds] == [2, 1]
    warm = json.loads((out / "warmstart.json").read_text())
    assert warm["added"] == 3  # the 2 grid cells and classic; "none" is no point of the space
    trials = pd.read_parquet(out / "trials.parquet")
    optuna_trials = trials[trials["user_attrs_source"] == "optuna"]
    assert len(optuna_trials) == 3 and (optuna_trials["state"] == "COMPLETE").all()
    assert optuna_trials["user_attrs_cell"].is_unique  # every trial counted once
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) == warm["added"] + 3 and complete["number"].is_unique
    assert json.loads((out / "round~1/told.json").read_text())["finished"] == warm["added"] + 3
    best = json.loads((out / "best_seeds.json").read_text())
    assert best["accuracy"] == complete["value"].max() and len(best["seeds_accuracy"]) == 2
    for name in ("history.png", "trials_over_grid.png"):
        assert mpimg.imread(out / name).shape[0] > 300
    # every new trial wrote an ordinary cell result (seed 1998), beside the grid's
    results = list((tmp_path / "results/tiny/lenet/cells").rglob("seed~*.json"))
    assert len(results) >= 4 + 1 + 2  # 4 configured cells, new points, the best retrained with 2 seeds
    refined = pd.read_parquet(tmp_path / "results/tiny/lenet/tables/cells_refined.parquet")
    assert len(refined) == len(results)  # the refined points land in the tidy table too
    again = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    # more trials: only the new rounds run (round 1 grows by one trial, round 2 is new)
    block["optuna"]["n_trials"] = 5
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials["state"] == "COMPLETE").sum() == warm["added"] + 5
    sizes = [len(json.loads((out / f"round~{r}/asked.json").read_text())["trials"]) for r in (0, 1, 2)]
    assert sizes == [2, 2, 1]
    assert json.loads((out / "round~0/asked.json").read_text())["trials"] == rounds[0]  # round 0 untouched


def test_with_packs_each_round_trains_its_trials_as_one_pack(tmp_path):
    cfg = tiny_config(mean=[0.0, 1.0], std=[0.5])
    cfg["cluster"] = {"pack": 4}
    cfg["models"]["lenet"]["references"] = {"classic": {"mean": 0.1307, "std": 0.3081}}
    cfg["models"]["lenet"]["optuna"] = {"n_trials": 3, "batch": 2, "retrain_seeds": [1998]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "results/tiny/lenet/optuna"
    for number, size in ((0, 2), (1, 1)):
        asked = json.loads((out / f"round~{number}/asked.json").read_text())["trials"]
        record = json.loads((out / f"round~{number}/pack.json").read_text())
        assert (
            sorted(record["members"]) == sorted([t["mean"], t["std"]] for t in asked) and len(asked) == size
        )
        for path in record["results"]:
            result = json.loads((tmp_path / path).read_text())
            assert result["pack"] == f"round~{number}" and result["pack_size"] == size
            log = tmp_path / path.replace("results/tiny/lenet/cells", "logs/tiny/lenet/train").replace(
                ".json", ".log"
            )
            assert f"(pack round~{number} of {size} cells)" in log.read_text()
    warm = json.loads((out / "warmstart.json").read_text())
    assert json.loads((out / "round~1/told.json").read_text())["finished"] == warm["added"] + 3
    again = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_an_evaluation_only_study_gets_its_tables_heatmap_summary_report_and_status(tmp_path):
    """epochs: 0 (the notebook's ResNet protocol) for LeNet with two seeds and ResNet18 (no
    weights): before, the aggregate crashed formatting an epoch-1 accuracy that does not exist."""
    cfg = test_config("eval.yaml")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for model, n in (("lenet", 6), ("resnet18", 3)):
        cells = pd.read_parquet(tmp_path / f"results/evalonly/{model}/tables/cells.parquet")
        assert (
            len(cells) == n
            and (cells["epochs_run"] == 0).all()
            and cells["final_accuracy"].between(0, 1).all()
        )
        assert cells["epochs_to_threshold"].isna().all()
        summary = (tmp_path / f"results/evalonly/{model}/tables/summary.md").read_text()
        assert "best grid cell" in summary and "Evaluation only (epochs: 0)" in summary
        assert "How fast it learns" not in summary
    height, width = mpimg.imread(tmp_path / "results/evalonly/plots/heatmap.png").shape[:2]
    assert height > 1.5 * width  # one accuracy panel per model, two models: no speed panels
    assert mpimg.imread(tmp_path / "results/evalonly/plots/curves.png")[..., :3].std() > 0.05
    report = snakemake("--report", "report.html", "--directory", str(tmp_path), cwd=tmp_path)
    assert report.returncode == 0 and "summary.md" in (tmp_path / "report.html").read_text()
    status = subprocess.run(
        [str(BIN / "python"), str(ROOT / "scripts/status.py"), "--json"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    models = json.loads(status.stdout)["models"]
    assert (models["lenet"]["done"], models["resnet18"]["done"]) == (6, 3)
    # the fold check works for every model: ResNet18's padded conv1 too (issue 21)
    fold = snakemake("--cores", "2", "--directory", str(tmp_path), "fold", cwd=tmp_path)
    assert fold.returncode == 0, fold.stderr[-3000:]
    check = json.loads((tmp_path / "results/evalonly/resnet18/fold/check.json").read_text())
    assert check["first_conv"] == "net.conv1" and len(check["cells"]) == 3
    assert all(c["max_abs_diff"] < 1e-4 * max(1.0, c["max_abs_output"]) for c in check["cells"]), check
