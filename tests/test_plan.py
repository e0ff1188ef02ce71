"""Planning needs no cluster: the dry run through the SLURM profile, and the cost plan."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml
from test_results import make_result

from conftest import BIN, ROOT, SMALL_MNIST, job_counts
from normsweep.core.results import EpochRecord, write_result
from normsweep.study.config import validate_config
from normsweep.study.plan import format_plan, plan
from normsweep.study.resources import cluster_resources, runtime_minutes


def config(**cluster):
    return validate_config(
        {
            "study": "p",
            "cluster": cluster,
            "models": {
                "lenet": {
                    "data": str(SMALL_MNIST),
                    "grid": {"mean": [0.0, 1.0], "std": [0.5, 1.0]},
                    "references": {"none": "none"},
                    "seeds": [1, 2],
                    "training": {"epochs": 10},
                }
            },
        }
    )


def test_plan_counts_cells_done_and_gpu_hours(tmp_path):
    cfg = config(seconds_per_epoch=36)
    first = plan(cfg, tmp_path)[0]
    assert (first.cells, first.done, first.to_run, first.jobs) == (10, 0, 10, 10)
    assert first.gpu_hours == 10 * 10 * 36 / 3600  # configured time per epoch
    # two finished cells, measured at 7.2 s per epoch
    for seed in (1, 2):
        write_result(
            tmp_path / f"results/p/lenet/cells/mean~0/std~0.5/seed~{seed}.json",
            make_result(
                mean_label="0", std_label="0.5", seed=seed, epochs=[EpochRecord(1, 0.9, 0.1, 0.2, 1.0, 7.2)]
            ),
        )
    second = plan(cfg, tmp_path, pack=4)[0]
    assert (second.done, second.to_run, second.jobs, second.pack_jobs) == (2, 8, 8, 2)  # 4 cells of each seed
    assert second.seconds_per_epoch == 7.2 and "measured" in second.seconds_source
    assert second.gpu_hours == 8 * 10 * 7.2 / 3600
    assert second.pack_gpu_hours == second.gpu_hours and "upper bound" in second.pack_seconds_source
    # a configured (benchmarked) pack epoch, then one measured on finished packs
    cfg["cluster"]["pack_seconds_per_epoch"] = 9.0
    assert plan(cfg, tmp_path, pack=4)[0].pack_gpu_hours == 2 * 10 * 9.0 / 3600
    write_result(
        tmp_path / "results/p/lenet/cells/mean~1/std~0.5/seed~1.json",
        make_result(mean_label="1", std_label="0.5", seed=1, pack="abc", pack_size=4,
                    epochs=[EpochRecord(1, 0.9, 0.1, 0.2, 1.0, 12.0)]),
    )  # fmt: skip
    third = plan(cfg, tmp_path, pack=4)[0]
    assert third.pack_seconds_per_epoch == 12.0 and "measured on packs" in third.pack_seconds_source
    assert "packs of 4: 2 jobs" in format_plan([third], 1)
    assert "8 cells to run in 8 jobs" in format_plan([second], 1)


def test_train_resources_come_from_the_config_and_environment(monkeypatch):
    monkeypatch.setenv("NORMSWEEP_SLURM_PARTITION", "gpu-short")
    monkeypatch.setenv("NORMSWEEP_SLURM_GPU_MODEL", "a100")
    cfg = config(seconds_per_epoch=20, cpus_per_gpu=8, account="lab")
    res = cluster_resources(cfg)
    assert (
        res["slurm_partition"] == "gpu-short" and res["gpu_model"] == "a100" and res["slurm_account"] == "lab"
    )
    assert res["gpu"] == 1 and res["cpus_per_gpu"] == 8
    assert runtime_minutes(cfg, "lenet") == 10  # ceil((10 epochs x 20 s x 1.5 + 300 s) / 60)
    cpu_only = cluster_resources(config(gpus_per_cell=0))
    assert cpu_only["gpu"] == 0 and cpu_only["gpu_model"] == ""


def test_plan_script_runs_on_config_files(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"study": "plan-test", "cluster": {"seconds_per_epoch": 12}}))
    # merged in order, as snakemake does: the demo, then the extra file on top of it
    run = subprocess.run(
        # (--no-cluster: the partition check is tests/test_slurm.py's; here only the plan's numbers)
        [
            sys.executable,
            str(ROOT / "scripts/plan.py"),
            "--configfile",
            "config/config.yaml",
            str(extra),
            "--no-cluster",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "lenet" in run.stdout and "29 cells to run" in run.stdout
    # the zoo: 9 models x (225 grid cells + 3 references), and where each weights file goes
    zoo = subprocess.run(
        [sys.executable, str(ROOT / "scripts/plan.py"), "--configfile", "config/zoo.yaml", "--no-cluster"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")},
    )  # fmt: skip
    if importlib.util.find_spec("timm") is None:  # its two timm models need the optional timm
        assert zoo.returncode != 0 and "setup_env.sh --timm" in zoo.stderr, zoo.stderr
        return
    assert zoo.returncode == 0, zoo.stderr
    assert f"{9 * 228} cells to run" in zoo.stdout, zoo.stdout
    # one prepared copy per distinct preprocessing, not one per model
    assert "data: 6 prepared copies for 9 image model(s)" in zoo.stdout, zoo.stdout
    assert "(resize 256, crop 224, bilinear) for resnet18, vgg16, vit_b_16: 12 val images" in zoo.stdout
    assert (
        "resnet50 weights IMAGENET1K_V2 (torchvision ResNet50_Weights.IMAGENET1K_V2, published top-1 0.8086): "
        f"MISSING: put https://download.pytorch.org/models/resnet50-11ad3fa6.pth (downloaded elsewhere) at "
        f"{tmp_path / 'torch/hub/checkpoints/resnet50-11ad3fa6.pth'}"
    ) in zoo.stdout, zoo.stdout


def test_dry_run_through_the_slurm_profile_needs_no_cluster(tmp_path, demo_folder):
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf")}
    run = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(ROOT / "workflow/Snakefile"),
            "--profile",
            str(ROOT / "profiles/slurm"),
            "-n",
            "--quiet",
            "rules",
        ],
        cwd=demo_folder,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "train_cell" in run.stdout


def test_the_zoo_plans_on_the_tiny_folder_without_its_weights(tmp_path, demo_folder):
    """Config/zoo.yaml dry-runs through the SLURM profile with no weights file at all
    (a real run checks them before its first job); each of its 9 models is listed, then one
    evaluation pack per 32 cells."""
    if importlib.util.find_spec("timm") is None:
        pytest.skip("config/zoo.yaml has two timm models: bash scripts/setup_env.sh --timm")
    env = {
        **os.environ,
        "SLURM_CONF": str(tmp_path / "no-such-slurm.conf"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    run = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--profile",
         str(ROOT / "profiles/slurm"), "--configfile", str(ROOT / "config/zoo.yaml"), "-n", "--quiet", "rules"],
        cwd=demo_folder, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    counts = job_counts(run.stdout)
    assert counts["list_images"] == 9 and counts["aggregate"] == 9, run.stdout


def local_rules() -> set[str]:
    """The rules that run on the login node (`localrule: True` in workflow/rules/*.smk)."""
    names = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M):
            match = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if match and "localrule: True" in block:
                names.add(match.group(1))
    return names | {"all"}


def test_the_full_refinement_fits_a_clusters_time_limit(tmp_path):
    """config/full.yaml with 200 Optuna trials (the workers asked for 57 hours): rounds
    of ordinary cells, no job longer than one cell, as many rounds as n_trials / batch."""
    extra = tmp_path / "optuna.yaml"
    extra.write_text(yaml.safe_dump({"models": {"lenet": {"optuna": {"n_trials": 200, "batch": 8}}}}))
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf")}
    run = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", "--configfile", "config/full.yaml", str(extra)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = re.findall(r"^(rule|checkpoint) (\w+):\n(?:    .*\n)*?    resources: (.*)", run.stdout, re.M)
    submitted = {name: res for _, name, res in jobs if name not in local_rules()}
    limits = {name: int(re.search(r"runtime=(\d+)", res).group(1)) for name, res in submitted.items()}
    cell = runtime_minutes(validate_config(yaml.safe_load((ROOT / "config/full.yaml").read_text())), "lenet")
    assert limits["train_cell"] == cell == 17
    assert max(limits.values()) <= cell, limits  # trial cells are train_cell jobs: the same limit
    counts = {name: sum(1 for _, n, _ in jobs if n == name) for name in ("optuna_ask", "optuna_tell")}
    assert counts == {"optuna_ask": 25, "optuna_tell": 25}


def test_a_round_trained_as_one_pack_gets_the_limit_of_its_batch_not_of_cluster_pack():
    """A refinement round packs its optuna.batch trial cells, whatever cluster.pack is."""
    from normsweep.study.resources import pack_runtime_minutes, round_pack_runtime_minutes

    cfg = config(pack=64, seconds_per_epoch=15)
    cfg["models"]["lenet"]["optuna"] = {"n_trials": 16, "batch": 4}
    validate_config(cfg)
    assert round_pack_runtime_minutes(cfg, "lenet") == pack_runtime_minutes(cfg, "lenet", 4)
    assert round_pack_runtime_minutes(cfg, "lenet") == runtime_minutes(cfg, "lenet", 4 * 15) == 20
    assert pack_runtime_minutes(cfg, "lenet") == runtime_minutes(cfg, "lenet", 64 * 15) == 245
    cfg["cluster"]["pack_seconds_per_epoch"] = 40.0  # measured on packs of 64: a round of 4 is no slower
    assert round_pack_runtime_minutes(cfg, "lenet") == runtime_minutes(cfg, "lenet", 40.0)
    cfg["models"]["lenet"]["optuna"]["batch"] = 128  # twice the measured pack
    assert round_pack_runtime_minutes(cfg, "lenet") == runtime_minutes(cfg, "lenet", 80.0)


def test_a_study_larger_than_the_queue_cap_is_planned_in_waves():
    """2,000 jobs under a cap of 5 queued jobs flow in 400 waves; under the cap, nothing to say."""
    from normsweep.study.plan import waves_line

    assert waves_line(2000, 5) == (
        "under this cluster's cap of 5 jobs at once: 2000 jobs in about 400 waves (snakemake submits "
        "the next as one ends; install the profile with --max-jobs 5)"
    )
    assert waves_line(4, 5) is None and waves_line(2000, None) is None
