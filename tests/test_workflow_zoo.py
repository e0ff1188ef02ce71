"""Any model on the grid through the real workflow: torchvision models by name, a user's own
class and a timm model, evaluated only, one evaluation pack per model: the tables, figures,
summary, report, status and fold check of an evaluation-only study. (An evaluation-only cell
alone in its job: tests/test_slurm.py.)"""

import copy
import hashlib
import json
import re
import subprocess

import matplotlib.image as mpimg
import pandas as pd
import yaml

from conftest import BIN, ROOT, SMALL_CNN, snakemake, test_config
from normsweep.core.cells import data_key
from normsweep.study.config import validate_config


def results_of(work):
    return work / "results/zoo"


def test_any_model_on_the_grid_torchvision_by_name_a_users_class_and_timm(tmp_path):
    """resnet18 and mobilenet_v3_small by name, a user's module:Class and
    a timm model, evaluated only (val/ alone prepared), each model's cells one evaluation pack;
    mobilenet's named weights come from torch's cache (a dry run plans without them, a run
    without them stops before any job naming the file), bring their `own` reference and the
    published top-1; eval cells keep their predictions and are compared by McNemar."""
    import importlib.util
    import os

    import torch
    from torchvision import models as tv_models

    cfg = test_config("zoo.yaml")
    if importlib.util.find_spec("timm") is None and os.environ.get("NORMSWEEP_REQUIRE_TIMM") != "1":
        del cfg["models"]["vit"]
    (tmp_path / "mylab_nets.py").write_text(SMALL_CNN)
    torch_home = tmp_path / "torch"
    weights = torch_home / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    torch.manual_seed(0)
    state = tv_models.get_model("mobilenet_v3_small").state_dict()
    cfg["models"]["mobilenet_v3_small"]["weights_sha256"] = "to be known"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {"TORCH_HOME": str(torch_home)}
    plan = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path, env=env)
    assert plan.returncode == 0, plan.stderr[-3000:]  # no weights needed to plan
    missing = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path, env=env)
    assert missing.returncode != 0 and f"at {weights}" in missing.stderr, missing.stderr[-3000:]
    assert "models.mobilenet_v3_small.weights" in missing.stderr and not (tmp_path / "results").exists()
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)
    cfg["models"]["mobilenet_v3_small"]["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    image_models = [m for m in ("resnet18", "mobilenet_v3_small", "vit") if m in cfg["models"]]
    assert len(re.findall(r"rule train_pack:", log)) == len(cfg["models"])  # one pack per model
    # val/ only, one prepared copy per distinct preprocessing: resnet18 and the vit share
    # 40/32 bilinear, mobilenet_v3_small's weights bring their own interpolation
    images_only = {"models": {m: copy.deepcopy(cfg["models"][m]) for m in image_models}}
    validated = validate_config(images_only)  # with the weights' own preprocessing filled in
    copies = {data_key(validated["models"][m], True) for m in image_models}
    assert len(re.findall(r"rule prepare_shard:", log)) == len(copies)
    assert len(copies) == 2 if "vit" in image_models else len(copies) == len(image_models)
    mobilenet = pd.read_parquet(results_of(tmp_path) / "mobilenet_v3_small/tables/cells.parquet")
    assert (mobilenet["head"] == "mapped").all()  # 1000-class weights on three wnid folders
    expected = {"resnet18": 4, "mobilenet_v3_small": 4, "mine": 3, "vit": 4}
    results = tmp_path / "results/zoo"
    for model in cfg["models"]:
        cells = pd.read_parquet(results / f"{model}/tables/cells.parquet")
        assert len(cells) == expected[model] and (cells["epochs_run"] == 0).all(), (model, cells)
        assert cells["final_accuracy"].between(0, 1).all()
        assert cells["epochs_to_threshold"].isna().all()  # nothing learned: no learning speed
        stats = pd.read_parquet(results / f"{model}/tables/cell_stats.parquet")
        assert stats["p_value"].notna().sum() == expected[model] - 1  # every cell but the baseline
        summary = (results / f"{model}/tables/summary.md").read_text()
        assert "McNemar" in summary and "best grid cell" in summary
        # before, the aggregate crashed formatting an epoch-1 accuracy that does not exist
        assert "Evaluation only (epochs: 0)" in summary and "How fast it learns" not in summary
    for model in image_models:
        cells = pd.read_parquet(results / f"{model}/tables/cells.parquet")
        assert (cells["n_train"] == 0).all() and (cells["n_test"] == 12).all()
        (listing,) = (results / model / "data").glob("*/listing.json")
        assert "train" not in json.loads(listing.read_text())
    own = json.loads((results / "mobilenet_v3_small/cells/mean~0.485_0.456_0.406/std~0.229_0.224_0.225/"
                      "seed~1998.json").read_text())  # fmt: skip
    assert own["arch"] == "mobilenet_v3_small" and own["weights"] == "IMAGENET1K_V1"
    assert own["preprocessing"]["own"]["source"].endswith("MobileNet_V3_Small_Weights.IMAGENET1K_V1")
    assert own["preprocessing"]["resize"] == 40  # the config's size wins over the weights' 256
    summary = (results / "mobilenet_v3_small/tables/summary.md").read_text()
    assert (
        "Published ImageNet-1K top-1 of torchvision MobileNet_V3_Small_Weights.IMAGENET1K_V1: 0.6767"
        in summary
    )
    assert (
        "on 12 images of 3 classes (not ImageNet's 50,000 val images of 1000 classes: not comparable)"
        in summary
    )
    assert "its own normalization (own)" in summary
    mine = json.loads((results / "mine/cells/mean~0/std~0.3/seed~1998.json").read_text())
    assert mine["arch"] == "mylab_nets:SmallCNN" and mine["dataset"] == "mnist"
    assert (results / "mine/cells/mean~0/std~0.3/seed~1998.predictions.npz").exists()
    if "vit" in cfg["models"]:  # no weights file: timm's cfg brings its image size, not an `own` cell
        vit = pd.read_parquet(results / "vit/tables/cells.parquet")
        assert set(vit["reference_names"]) >= {"half", "none"}  # no weights: no `own`
    study = (results / "summary.md").read_text()
    assert all(f"- {model}: " in study for model in cfg["models"]), study
    height, width = mpimg.imread(results / "plots/heatmap.png").shape[:2]
    assert height / width > 0.75 * len(cfg["models"])  # one row of panels (7.2 x 8.5 in) per model
    # an evaluation-only study gets the figures, report and status a trained one does
    assert mpimg.imread(results / "plots/curves.png")[..., :3].std() > 0.05
    report = snakemake("--report", "report.html", "--directory", str(tmp_path), cwd=tmp_path, env=env)
    assert report.returncode == 0 and "summary.md" in (tmp_path / "report.html").read_text()
    status = subprocess.run([str(BIN / "python"), str(ROOT / "scripts/status.py"), "--json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert status.returncode == 0, status.stderr
    done = {model: m["done"] for model, m in json.loads(status.stdout)["models"].items()}
    assert done == {model: expected[model] for model in cfg["models"]}
    # the fold check works for ResNet18's padded conv1 too (LeNet's: tests/test_workflow.py)
    fold = snakemake("--cores", "2", "--directory", str(tmp_path), "results/zoo/resnet18/fold/check.json",
                     cwd=tmp_path, env=env)  # fmt: skip
    assert fold.returncode == 0, fold.stderr[-3000:]
    check = json.loads((results / "resnet18/fold/check.json").read_text())
    assert check["first_conv"] == "net.conv1" and len(check["cells"]) == 3
    assert all(c["max_abs_diff"] < 1e-4 * max(1.0, c["max_abs_output"]) for c in check["cells"]), check
