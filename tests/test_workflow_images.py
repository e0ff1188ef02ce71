"""Image studies through the real workflow: ResNet18 on the tiny ImageFolder (a change of
image size; its evaluation-only pack)."""

import json
import re
import shutil

import matplotlib.image as mpimg
import pandas as pd
import yaml

from conftest import data_dir, job_counts, snakemake, test_config


def cfg_valid(cfg):
    from normsweep.study.config import validate_config

    return validate_config(json.loads(json.dumps(cfg)))


def test_resnet18_grid_on_the_tiny_image_folder(tmp_path):
    """Prepared in shards by jobs, trained as one pack of three separate networks that reads
    each batch once; a changed image prepares its shard again and nothing else; a new image
    size (and epochs: 0) evaluates the cells again, as one evaluation pack."""
    cfg = test_config("resnet.yaml")
    shutil.copytree(cfg["models"]["resnet18"]["data"], tmp_path / "photos")
    cfg["models"]["resnet18"]["data"] = str(tmp_path / "photos")
    cfg["models"]["resnet18"]["training"]["channels_last"] = True  # a job resource, recorded per cell
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(re.findall(r"rule prepare_shard:", run.stdout + run.stderr)) == 3  # train 2 shards, val 1
    assert len(re.findall(r"rule train_pack:", run.stdout + run.stderr)) == 1, run.stderr[-3000:]
    folder = data_dir(tmp_path, cfg, "resnet18")
    stats = json.loads((folder / "stats.json").read_text())
    assert len(stats["mean"]) == 3 and stats["n_images"] == 30  # exact per-channel statistics
    cells = pd.read_parquet(tmp_path / "results/rn/resnet18/tables/cells.parquet")
    assert len(cells) == 3 and (cells["n_train"] == 30).all() and (cells["n_test"] == 12).all()
    assert (cells["pack_size"] == 3).all() and cells["final_train_loss"].nunique() == 3  # three networks
    imagenet = json.loads(
        (
            tmp_path / "results/rn/resnet18/cells/mean~0.485_0.456_0.406/std~0.229_0.224_0.225/seed~1998.json"
        ).read_text()
    )
    assert imagenet["mean"] == [0.485, 0.456, 0.406] and imagenet["lr"] == 0.01
    assert imagenet["execution"] == {"channels_last": True, "cudnn_benchmark": False, "compile": False}
    cache = tmp_path / "results/data" / folder.name  # the data cache: one copy per folder and image size
    shards = sorted(p.name.rsplit("-", 1)[0] for p in cache.glob("*.npy"))
    assert shards == ["train-00000", "train-00001", "val-00000"] and not (folder / "shards").exists()
    assert mpimg.imread(tmp_path / "results/rn/plots/heatmap.png").shape[0] > 300
    # (the RGB Optuna study: tests/test_slurm.py::test_per_channel_cells_and_an_rgb_round_run_as_gpu_jobs)
    # another study elsewhere, pointed at this cache: it lists the folder and prepares nothing
    other = tmp_path / "other"
    (other / "config").mkdir(parents=True)
    (other / "config" / "config.yaml").write_text(
        yaml.safe_dump({**cfg, "study": "rn2", "data_cache": str(cache.parent)})
    )
    shared = snakemake(
        "--cores",
        "2",
        "--directory",
        str(other),
        f"{data_dir(other, cfg, 'resnet18').relative_to(other)}/files.json".replace("/rn/", "/rn2/"),
        cwd=other,
    )
    assert shared.returncode == 0, shared.stderr[-3000:]
    said = shared.stdout + shared.stderr
    assert "list_images" in said and "check_data" in said and "prepare_shard" not in said, said[-3000:]
    from normsweep.study.config import validate_config
    from normsweep.study.plan import data_plans, format_data_plans

    other_config = validate_config(yaml.safe_load((other / "config/config.yaml").read_text()))
    planned = format_data_plans(data_plans(other_config, other))  # what scripts/plan.py prints
    assert "3 shards in" in planned and "0 to prepare on CPUs, 3 reused from the cache" in planned, planned
    # a shard deleted by hand is noticed and prepared again
    val_shard = next(cache.glob("val-00000-*.npy"))
    val_shard.unlink()
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert job_counts(plan.stdout)["prepare_shard"] == 1, plan.stdout
    # another photo under a training image's name: its shard alone is prepared again, as a new
    # file (another study may be reading the old one)
    listing = json.loads((folder / "listing.json").read_text())
    victim = tmp_path / "photos/train" / listing["train"]["files"][20]  # in the second train shard
    shutil.copy(tmp_path / "photos/train" / listing["train"]["files"][0], victim.with_suffix(".tmp"))
    victim.with_suffix(".tmp").rename(victim)
    version = json.loads((folder / "files.json").read_text())["version"]
    assert set(cells["data_version"]) == {version}  # every result records the data it ran on
    told = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "photos changed since it was listed" in told.stdout + told.stderr, told.stderr[-3000:]
    first = next(cache.glob("train-00000-*.npy"))
    before = first.stat().st_mtime_ns
    target = "results/rn/resnet18/tables/cells.parquet"
    changed = snakemake("--cores", "2", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert len(re.findall(r"rule prepare_shard:", changed.stdout + changed.stderr)) == 2, changed.stderr[
        -3000:
    ]
    assert first.stat().st_mtime_ns == before and val_shard.exists()
    signature = json.loads((folder / "listing.json").read_text())["train"]["shards"][1]["signature"]
    assert json.loads((cache / f"train-00001-{signature}.json").read_text())["signature"] == signature
    assert len(list(cache.glob("train-00001-*.npy"))) == 2  # the old copy stays for its readers
    # the finished cells ran on the former version: kept, marked in the tables, named by a dry run and plan.py
    now = json.loads((folder / "files.json").read_text())["version"]
    assert now != version and set(pd.read_parquet(tmp_path / target)["data_version"]) == {version}
    summary = (tmp_path / "results/rn/resnet18/tables/summary.md").read_text()
    assert "ran on different versions of the data" in summary and f"the data now is `{now}`" in summary
    told = snakemake("-n", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert f"3 finished cells ran on data version {version}" in told.stdout + told.stderr
    from normsweep.study.plan import stale_data

    assert "3 finished cells ran on data version" in stale_data(cfg_valid(cfg), tmp_path)[0]
    # a new image size: the data rules see it in their params and prepare it, and the cells
    # run again on it (before, every cell failed with "no tensor cache"); with
    # epochs: 0 their pack is an evaluation pack: one network, each test batch read once
    cfg["models"]["resnet18"]["image"] = {"resize": 48, "crop": 40, "shard_size": 16}
    cfg["models"]["resnet18"]["training"]["epochs"] = 0
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    files = json.loads((data_dir(tmp_path, cfg, "resnet18") / "files.json").read_text())
    assert files["image"] == {"resize": 48, "crop": 40, "shard_size": 16}
    resized = pd.read_parquet(tmp_path / target)
    assert len(resized) == 3 and (resized["status"] == "ok").all() and (resized["pack_size"] == 3).all()
    assert (resized["epochs_run"] == 0).all()
    again = snakemake("-n", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    # back to the first size and training: its data files are still there, and the pack runs again
    # (an evaluation-only study lists and prepares val/ alone: that would list the folder again)
    cfg["models"]["resnet18"]["image"] = {"resize": 40, "crop": 32, "shard_size": 16}
    cfg["models"]["resnet18"]["training"]["epochs"] = 1
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    back = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert job_counts(back.stdout).get("train_pack") == 1 and "check_data" not in job_counts(back.stdout), (
        back.stdout
    )
    # a file named as an image that is none: its shard's job fails with one line naming it and
    # the fix, and no Python traceback in its log
    (tmp_path / "photos/val/n01440764/ILSVRC2012_val_broken.JPEG").write_text("not a photo")
    bad = snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert bad.returncode != 0
    log = max((tmp_path / "logs/rn/data").glob("*/val-00000-*.log"), key=lambda f: f.stat().st_mtime_ns)
    text = log.read_text()
    assert "ILSVRC2012_val_broken.JPEG: not a readable image" in text and "remove or replace it" in text
    assert "Traceback" not in text, text
