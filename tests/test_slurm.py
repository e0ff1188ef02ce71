"""The cluster path on a real SLURM (scripts/slurm/start.sh): sbatch, GPU requests, sacct,
a failing job, and a job killed mid-run that resumes from its checkpoint.

Skipped when no test cluster answers, unless NORMSWEEP_REQUIRE_SLURM=1 (as in .ci/run),
where a missing cluster is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT, SMALL_MNIST
from normsweep import data, train
from normsweep.results import read_result

SLURM_DIR = Path(os.environ.get("NORMSWEEP_SLURM_DIR", "/tmp/normsweep-slurm"))
SLURM_CONF = SLURM_DIR / "etc" / "slurm.conf"
PARTITION = os.environ.get("NORMSWEEP_SLURM_PARTITION", "testgpu")
GPU_MODEL = os.environ.get("NORMSWEEP_SLURM_GPU_MODEL", "fakegpu")
HARD_LIMIT = 420  # seconds: every snakemake run here is killed after this, whatever it does


def _cluster_up() -> bool:
    if not SLURM_CONF.exists() or shutil.which("sinfo") is None:
        return False
    run = subprocess.run(
        ["sinfo", "-h", "-o", "%t"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SLURM_CONF": str(SLURM_CONF)},
    )
    return run.returncode == 0 and "idle" in run.stdout or "mix" in run.stdout


if not _cluster_up():
    if os.environ.get("NORMSWEEP_REQUIRE_SLURM") == "1":
        raise RuntimeError(f"NORMSWEEP_REQUIRE_SLURM=1 but no test cluster answers ({SLURM_CONF})")
    pytest.skip("no test SLURM cluster: run scripts/slurm/start.sh", allow_module_level=True)

ENV = {
    **os.environ,
    "SLURM_CONF": str(SLURM_CONF),
    "NORMSWEEP_SLURM_PARTITION": PARTITION,
    "NORMSWEEP_SLURM_GPU_MODEL": GPU_MODEL,
}


def slurm_config(study: str, *, grid=None, references=None, **training) -> dict:
    return {
        "study": study,
        "cluster": {"cpus_per_gpu": 1, "mem_mb": 1500, "seconds_per_epoch": 30},
        "models": {
            "lenet": {
                "data": str(SMALL_MNIST),
                "grid": grid or {"mean": [0.0, 1.0], "std": [0.3, 1.0]},
                "references": references
                if references is not None
                else {"classic": {"mean": 0.1307, "std": 0.3081}},
                "seeds": [1998],
                "training": {"epochs": 1, "train_subset": 300, "test_subset": 200, "threads": 1, **training},
            }
        },
    }


def run_snakemake(
    work: Path, *args: str, profile: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """snakemake --profile profiles/slurm (or the named profile), with short status intervals,
    under a hard kill."""
    return subprocess.run(
        slurm_command(work, *args, profile=profile),
        cwd=work,
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=HARD_LIMIT + 30,
    )


def slurm_command(work: Path, *args: str, profile: str | None = None) -> list[str]:
    return [
        "timeout",
        "-s",
        "KILL",
        str(HARD_LIMIT),
        str(BIN / "snakemake"),
        "--snakefile",
        str(ROOT / "workflow/Snakefile"),
        "--profile",
        profile or str(ROOT / "profiles/slurm"),
        "--directory",
        str(work),
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "5",
        *args,
    ]


def write_config(work: Path, config: dict) -> None:
    (work / "config").mkdir(parents=True, exist_ok=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def sacct_jobs(since: str) -> list[dict[str, str]]:
    fields = ["JobID", "JobName%80", "Partition", "AllocTRES%80", "ReqTRES%80", "State", "Comment%120"]
    run = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", since, "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    names = [f.split("%")[0] for f in fields]
    return [
        dict(zip(names, line.split("|"), strict=False)) for line in run.stdout.splitlines() if line.strip()
    ]


def since_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("slurm-grid")
    write_config(work, slurm_config("slurm-grid"))
    since = since_now()
    run = run_snakemake(work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    time.sleep(2)  # let the accounting catch up
    return work, run, sacct_jobs(since)


def test_every_cell_went_through_sbatch_with_a_gpu(grid_run):
    work, run, jobs = grid_run
    cells = [j for j in jobs if "train_cell" in j["Comment"] or "train_cell" in j["JobName"]]
    assert len(cells) == 5, jobs  # 2 x 2 grid + the classic reference
    for job in cells:
        assert job["State"] == "COMPLETED", job
        assert job["Partition"] == PARTITION
        assert "gres/gpu=1" in job["AllocTRES"], job  # the GPU as SLURM recorded it
    print("\nsacct:\n" + "\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['AllocTRES']}" for j in cells))
    # data check, tables and figures ran on the login node, not through sbatch
    assert not [
        j for j in jobs if re.search("check_data|dataset_stats|aggregate|plots", j["Comment"] + j["JobName"])
    ]


def test_the_table_and_heatmap_appear(grid_run):
    work, _, _ = grid_run
    assert (work / "results/slurm-grid/lenet/tables/cells.parquet").exists()
    assert (work / "results/slurm-grid/plots/heatmap.png").stat().st_size > 20_000
    summary = json.loads((work / "results/slurm-grid/lenet/tables/summary.json").read_text())["lenet"]
    assert summary["n_results"] == 5
    log = (work / "logs/slurm-grid/lenet/train/mean~0/std~0.3/seed~1998.log").read_text()
    assert "epoch 1/1" in log


def test_the_plain_profile_name_works_once_installed(tmp_path):
    """`snakemake --profile slurm`, as cluster users type it: scripts/install_profile.py puts
    the project's profile, with the site's partition and GPU model, where snakemake looks."""
    home = tmp_path / "xdg"
    env = {
        k: v for k, v in ENV.items() if not k.startswith("NORMSWEEP_SLURM_")
    }  # site settings: profile only
    env["XDG_CONFIG_HOME"] = str(home)
    work = tmp_path / "work"
    write_config(work, slurm_config("slurm-named", grid={"mean": [0.5], "std": [1.0]}, references={}))
    before = run_snakemake(work, "-n", profile="slurm", env=env)
    assert before.returncode != 0 and "profile" in before.stderr  # not installed yet: snakemake says so
    install = subprocess.run(
        [str(BIN / "python"), str(ROOT / "scripts/install_profile.py"), "--partition", PARTITION,
         "--gpu-model", GPU_MODEL],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert (home / "snakemake/slurm/config.yaml").exists()
    since = since_now()
    run = run_snakemake(work, profile="slurm", env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    time.sleep(2)
    cells = [j for j in sacct_jobs(since) if "train_cell" in j["Comment"] + j["JobName"]]
    assert len(cells) == 1 and cells[0]["State"] == "COMPLETED", cells
    assert cells[0]["Partition"] == PARTITION and "gres/gpu=1" in cells[0]["AllocTRES"], cells
    # installing again is idempotent; a profile the user changed is kept unless --force
    again = subprocess.run(
        [str(BIN / "python"), str(ROOT / "scripts/install_profile.py"), "--partition", "other"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "--force" in again.stderr


def test_a_failing_job_fails_the_run_and_names_its_log(tmp_path):
    cfg = slurm_config("slurm-fail", grid={"mean": [0.0], "std": [1.0]}, references={}, device="cuda:7")
    write_config(tmp_path, cfg)
    run = run_snakemake(tmp_path, "--retries", "0")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    log = "logs/slurm-fail/lenet/train/mean~0/std~1/seed~1998.log"
    assert log in out  # snakemake names the cell's own log...
    assert "no CUDA GPU" in out  # ...and shows what went wrong (show-failed-logs)
    assert re.search(r"SLURM.*(job|Job).*\d+", out)


def test_a_killed_job_resumes_from_its_checkpoint(tmp_path):
    """scancel mid-run, then a new workflow run: the cell resumes after its last epoch.
    (Plugin 2.8.0 reads sacct's 'CANCELLED by <uid>' as still running, so the first
    snakemake is stopped with Ctrl-C, as a user would; a TIMEOUT is seen and retried.)"""
    epochs = 4
    cfg = slurm_config(
        "slurm-resume",
        grid={"mean": [0.1307], "std": [0.3081]},
        references={},
        epochs=epochs,
        train_subset=3000,
        deterministic=True,
    )
    write_config(tmp_path, cfg)
    checkpoint = tmp_path / "results/slurm-resume/lenet/checkpoints/mean~0.1307/std~0.3081/seed~1998.pt"
    command = slurm_command(tmp_path, "--retries", "0")
    since = since_now()
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
        assert checkpoint.exists(), "no checkpoint appeared"
        time.sleep(1.0)  # into the next epoch
        running = [j for j in sacct_jobs(since) if j["State"] == "RUNNING"]
        assert len(running) == 1, running
        subprocess.run(["scancel", running[0]["JobID"]], env=ENV, check=True)
        deadline = time.time() + 60
        while time.time() < deadline and not sacct_jobs(since)[-1]["State"].startswith("CANCELLED"):
            time.sleep(0.5)
        assert sacct_jobs(since)[-1]["State"].startswith("CANCELLED")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    assert checkpoint.exists()  # the cell's progress survived the kill
    assert not (tmp_path / "results/slurm-resume/lenet/cells/mean~0.1307/std~0.3081/seed~1998.json").exists()

    rerun = run_snakemake(tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    result = read_result(tmp_path / "results/slurm-resume/lenet/cells/mean~0.1307/std~0.3081/seed~1998.json")
    assert [e.epoch for e in result.epochs] == list(range(1, epochs + 1))
    assert not checkpoint.exists()  # removed once the result is written
    log = (tmp_path / "logs/slurm-resume/lenet/train/mean~0.1307/std~0.3081/seed~1998.log").read_text()
    resumed = re.findall(r"resumed from .* after epoch (\d+)", log)
    assert len(resumed) == 1, log
    done_before = int(resumed[0])
    # the rerun trained only the epochs after the checkpoint: of the work done before the
    # kill, only the interrupted epoch is done again
    for k in range(1, epochs + 1):
        assert len(re.findall(rf"epoch {k}/{epochs}:", log)) == (1 if k > done_before else 0), log
    print(
        f"\nresume: killed during epoch {done_before + 1}, resumed after epoch {done_before}; "
        f"epochs recomputed: 1 (the interrupted one)"
    )

    # deterministic on the CPU: the resumed cell equals an uninterrupted run, to the last digit
    tr = data.load_mnist(SMALL_MNIST, train=True, limit=3000)
    te = data.load_mnist(SMALL_MNIST, train=False, limit=200)
    whole = train.train_cell(
        train.CellSpec("lenet", "mnist", "0.1307", "0.3081", [0.1307], [0.3081], 1998),
        train.TensorData.from_uint8(tr.images, tr.labels),
        train.TensorData.from_uint8(te.images, te.labels),
        train.TrainConfig(epochs=epochs, threads=1, deterministic=True),
    )
    assert [e.test_accuracy for e in result.epochs] == [e.test_accuracy for e in whole.epochs]
    assert [e.train_loss for e in result.epochs] == [e.train_loss for e in whole.epochs]


def test_packs_are_jobs_with_one_gpu_each(tmp_path):
    """cluster.pack: 3 trains the 5 cells in 2 packs, 2 jobs with one GPU each; every cell
    still has its own result and log."""
    cfg = slurm_config("slurm-pack")
    cfg["cluster"]["pack"] = 3
    write_config(tmp_path, cfg)
    since = since_now()
    run = run_snakemake(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    time.sleep(2)
    jobs = [j for j in sacct_jobs(since) if "train_" in j["Comment"] + j["JobName"]]
    print(
        "\nsacct (packs):\n" + "\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['AllocTRES']}" for j in jobs)
    )
    assert len(jobs) == 2 and all("train_pack" in j["Comment"] + j["JobName"] for j in jobs), jobs
    assert all("gres/gpu=1" in j["AllocTRES"] and j["State"] == "COMPLETED" for j in jobs), jobs
    results = [read_result(p) for p in (tmp_path / "results/slurm-pack/lenet/cells").rglob("seed~*.json")]
    assert len(results) == 5 and sorted(r.pack_size for r in results) == [2, 2, 3, 3, 3]
    assert "epoch 1/1" in (tmp_path / "logs/slurm-pack/lenet/train/mean~0/std~0.3/seed~1998.log").read_text()


def test_two_refinement_rounds_train_their_trials_as_gpu_jobs(tmp_path):
    """Optuna in rounds through SLURM: 3 trials in rounds of 2 and 1, each trial cell a job with
    one GPU; the study file is only touched by the local ask and tell rules."""
    cfg = slurm_config("slurm-rounds", grid={"mean": [0.0], "std": [0.3]}, references={})
    cfg["models"]["lenet"]["optuna"] = {"n_trials": 3, "batch": 2, "retrain_seeds": [1998]}
    write_config(tmp_path, cfg)
    since = since_now()
    run = run_snakemake(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    time.sleep(2)
    jobs = [j for j in sacct_jobs(since) if "train_cell" in j["Comment"] + j["JobName"]]
    print(
        "\nsacct (rounds):\n" + "\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['AllocTRES']}" for j in jobs)
    )
    out = tmp_path / "results/slurm-rounds/lenet/optuna"
    trial_cells = {
        (t["mean"], t["std"])
        for r in (0, 1)
        for t in json.loads((out / f"round~{r}/asked.json").read_text())["trials"]
    }
    # the grid cell, the trial cells, and the best point's seed when it is a new cell
    assert len(jobs) >= 1 + len(trial_cells) and all("gres/gpu=1" in j["AllocTRES"] for j in jobs), jobs
    assert all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert not [
        j
        for j in sacct_jobs(since)
        if re.search("optuna_(ask|tell|warmstart|summary)", j["Comment"] + j["JobName"])
    ]
    told = json.loads((out / "round~1/told.json").read_text())
    warm = json.loads((out / "warmstart.json").read_text())
    assert told["finished"] == warm["added"] + 3
