"""The workflow's other targets and inputs: the data check, the notebook comparison and a
user's own config file."""

import json

import pandas as pd
import yaml

from conftest import ROOT, SMALL_MNIST, data_dir, job_counts, snakemake, tiny_config


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


def test_reproduce_compares_reference_cells_with_the_notebook(tmp_path):
    cfg = tiny_config()
    cfg["compare_notebook"] = True
    cfg["cluster"] = {"pack": 2}  # a seed's two cells in one job (cells trained alone: test_workflow.py)
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
