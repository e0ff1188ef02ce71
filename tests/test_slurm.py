"""The cluster path on a real SLURM (scripts/slurm/start.sh): sbatch, GPU requests, sacct,
a failing job, and a job killed mid-run that resumes from its checkpoint.

Skipped when no test cluster answers, unless NORMSWEEP_REQUIRE_SLURM=1 (as in .ci/run),
where a missing cluster is a failure.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT, SMALL_MNIST, train_one
from normsweep.cluster import queue as slurm_queue
from normsweep.core.results import read_result
from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data import batches, mnist
from normsweep.monitoring.report import format_status
from normsweep.monitoring.status import study_status
from normsweep.study.config import validate_config

SLURM_DIR = Path(os.environ.get("NORMSWEEP_SLURM_DIR", "/tmp/normsweep-slurm"))
SLURM_CONF = SLURM_DIR / "etc" / "slurm.conf"
PARTITION = os.environ.get("NORMSWEEP_SLURM_PARTITION", "testgpu")
GPU_MODEL = os.environ.get("NORMSWEEP_SLURM_GPU_MODEL", "fakegpu")
URGENT = os.environ.get("NORMSWEEP_SLURM_URGENT_PARTITION", "urgent")  # preempts PARTITION's jobs
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


def preempt_the_node(wrap: str) -> str:
    """Submit a job of the higher-tier partition that needs the whole node: SLURM preempts the
    jobs running there for it (PreemptMode=REQUEUE, GraceTime). sbatch's answer."""
    submit = ["sbatch", "-p", URGENT, "-c", str(os.cpu_count()), "--mem=500", "-t", "1", "--wrap", wrap]
    return subprocess.run(submit, env=ENV, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """One SLURM run that the tests of this module inspect: LeNet's one grid cell + the classic
    reference and an Optuna refinement in 2 rounds of 1 trial; ResNet18 on the tiny image
    folder with the per-channel ImageNet reference and a per-channel (RGB) round of 1 trial; an
    evaluation-only LeNet cell: 8 GPU jobs on the node's 2 GPUs. Per-channel cells through
    sbatch are what failed before (a comma in their names)."""
    work = tmp_path_factory.mktemp("slurm-study")
    cfg = slurm_config("slurm-study", grid={"mean": [0.0], "std": [0.3]})
    cfg["models"]["lenet"]["optuna"] = {"n_trials": 2, "batch": 1, "retrain_seeds": [1998]}
    cfg["models"]["resnet18"] = {
        "data": str(ROOT / "data/imagenette-tiny"),
        "image": {"resize": 40, "crop": 32, "shard_size": 30},  # 2 prepare jobs through sbatch
        "grid": {"mean": [0.5], "std": [0.5]},
        "references": {"imagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
        "baseline": "imagenet",
        "seeds": [1998],
        "training": {"epochs": 1, "batch_size": 8, "test_batch_size": 16, "threads": 1},
        "optuna": {"n_trials": 1, "batch": 1, "per_channel": True, "mean": [-1, 2], "std": [0.05, 1],
                   "retrain_seeds": [1998]},
    }  # fmt: skip
    # an evaluation-only model (epochs: 0): its one cell is a GPU job too
    cfg["models"]["evaluated"] = {**copy.deepcopy(cfg["models"]["lenet"]), "arch": "lenet", "references": {},
                                  "grid": {"mean": [0.5], "std": [0.5]}}  # fmt: skip
    del cfg["models"]["evaluated"]["optuna"]
    cfg["models"]["evaluated"]["training"].update(epochs=0)
    write_config(work, cfg)
    since = since_now()
    run, polls = run_and_poll_status(work, validate_config(copy.deepcopy(cfg)))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    time.sleep(2)  # let the accounting catch up
    return work, run, sacct_jobs(since), polls


def queue_snapshot() -> dict[int, str]:
    """The cell jobs in the queue: job id -> queued or running (as normsweep.cluster.queue reads them)."""
    out = subprocess.run(["squeue", "--me", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True, env=ENV,
                         timeout=60).stdout  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        job_id, state, comment = line.split("|", 2)
        if comment.startswith("rule_train_cell_"):
            job = slurm_queue.Job(int(job_id), state, "", "", "", comment)
            jobs[int(job_id)] = "queued" if job.queued else "running"
    return jobs


def run_and_poll_status(work: Path, config: dict) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run snakemake through SLURM and, every 2 s while it runs, the status as scripts/status.py
    makes it (its one squeue and one sacct call), between two squeue snapshots of our own."""
    command = slurm_command(work)
    proc = subprocess.Popen(
        command, cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    polls = []
    started = time.time()
    previous = dict(os.environ)
    os.environ.update(ENV)  # slurm_queue.query_jobs asks this cluster
    try:
        while proc.poll() is None:
            before = queue_snapshot()
            status = study_status(config, work, slurm_queue.query_jobs(work))
            after = queue_snapshot()
            models = status["models"].values()
            polls.append({
                "t": round(time.time() - started, 1),
                "before": before,
                "after": after,
                **{k: sum(m[k] for m in models) for k in ("queued", "running", "finishing", "done", "lost")},
                "reasons": [q["job"] for m in models for q in m["queued_cells"]],
                "trial_running": [r["cell"] for m in models for r in m["running_cells"] if r["origin"] == "trial"],
            })  # fmt: skip
            time.sleep(2)
    finally:
        os.environ.clear()
        os.environ.update(previous)
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr), polls


def trial_cells(work: Path, model: str, rounds: int) -> set[tuple[str, str]]:
    out = work / f"results/slurm-study/{model}/optuna"
    return {
        (t["mean"], t["std"])
        for r in range(rounds)
        for t in json.loads((out / f"round~{r}/asked.json").read_text())["trials"]
    }


def names(job: dict[str, str], mean: str, std: str) -> bool:
    """The job's comment (the plugin writes the rule and its wildcards' values) names this cell."""
    return job["Comment"].endswith(f"_{mean}_{std}_1998")


def cell_jobs(jobs: list[dict[str, str]], model: str) -> list[dict[str, str]]:
    return [j for j in jobs if j["Comment"].startswith(f"rule_train_cell_wildcards_{model}_")]


def test_every_cell_went_through_sbatch_with_a_gpu(study_run):
    work, run, jobs, _ = study_run
    cells = [j for j in jobs if "train_cell" in j["Comment"] or "train_cell" in j["JobName"]]
    lenet = {("0", "0.3"), ("0.1307", "0.3081")}
    expected = lenet | trial_cells(work, "lenet", 2)
    expected_rgb = {("0.5", "0.5"), ("0.485_0.456_0.406", "0.229_0.224_0.225")} | trial_cells(
        work, "resnet18", 1
    )
    assert len(cell_jobs(jobs, "lenet")) >= len(expected), jobs  # (+ the best point's seed if it is new)
    assert len(cell_jobs(jobs, "resnet18")) >= len(expected_rgb), jobs
    for job in cells:
        assert job["State"] == "COMPLETED", job
        assert job["Partition"] == PARTITION
        assert "gres/gpu=1" in job["AllocTRES"], job  # the GPU as SLURM recorded it
    print(
        "\nsacct:\n"
        + "\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['AllocTRES']} {j['Comment'][:70]}" for j in cells)
    )
    # data check, tables, figures and the Optuna study ran on the login node, not through sbatch
    assert not [
        j
        for j in jobs
        if re.search("list_images|check_data|dataset_stats|aggregate|plots|optuna_(ask|tell|warmstart|summary)",
                     j["Comment"] + j["JobName"])
    ]  # fmt: skip


def test_the_status_counts_match_the_queue_at_every_poll(study_run):
    """Polled every 2 s while the study runs (the grid, the references, two refinement
    rounds and the retrained seed, through the real SLURM), the status's queued and running cells
    are squeue's PENDING and RUNNING cell jobs whenever the queue held still around the poll
    (cells whose result is written while their job ends are `finishing`); refinement trial cells
    show as running, and a waiting cell with SLURM's reason."""
    *_, polls = study_run
    steady = [p for p in polls if p["before"] == p["after"]]
    started = [p for p in steady if "running" in p["before"].values() or p["done"]]
    table = "\n".join(
        f"{p['t']:6.1f} s  squeue {sum(v == 'running' for v in p['before'].values())} R "
        f"{sum(v == 'queued' for v in p['before'].values())} PD | status running {p['running']} "
        f"(+{p['finishing']} finishing) queued {p['queued']} done {p['done']} lost {p['lost']}"
        for p in polls
    )
    print("\nstatus against squeue, every poll:\n" + table)
    assert len(started) >= 5, table
    for p in started:
        running = sum(v == "running" for v in p["before"].values())
        queued = sum(v == "queued" for v in p["before"].values())
        assert (p["running"] + p["finishing"], p["queued"], p["lost"]) == (running, queued, 0), table
    assert any(p["queued"] and p["reasons"] for p in polls), table
    assert all(r.startswith("queued") for p in polls for r in p["reasons"]), table
    assert any(r.startswith("queued (") for p in polls for r in p["reasons"]), table  # SLURM's reason
    assert any(p["trial_running"] for p in polls), table  # a refinement round's trial cells run


def test_images_are_prepared_by_cpu_jobs_through_sbatch(study_run):
    """The login node only lists the folder; each shard is its own SLURM job, with no
    GPU asked or given (the cells of the same run have theirs)."""
    _, _, jobs, _ = study_run
    prepare = [j for j in jobs if j["Comment"].startswith("rule_prepare_shard_")]
    assert len(prepare) == 2, jobs  # train 30 images in 1 shard of 30, val 12 in 1
    for job in prepare:
        assert job["State"] == "COMPLETED", job
        assert "gpu" not in job["AllocTRES"] + job["ReqTRES"], job
    assert all("gres/gpu=1" in j["AllocTRES"] for j in cell_jobs(jobs, "resnet18"))


def test_an_evaluation_only_cell_runs_as_a_gpu_job(study_run):
    """epochs: 0 through SLURM: the cell is evaluated, not trained, in a job with one GPU."""
    work, _, jobs, _ = study_run
    (job,) = cell_jobs(jobs, "evaluated")
    assert job["State"] == "COMPLETED" and "gres/gpu=1" in job["AllocTRES"], job
    result = read_result(work / "results/slurm-study/evaluated/cells/mean~0.5/std~0.5/seed~1998.json")
    assert result.status == "ok" and result.epochs_requested == 0
    assert [e.epoch for e in result.epochs] == [0]  # the evaluation alone, no training epoch
    assert 0 <= result.final_accuracy <= 1 and result.n_test == 200


def test_per_channel_cells_and_an_rgb_round_run_as_gpu_jobs(study_run):
    """With commas in its name, the ImageNet reference's job failed ("Invalid target
    wildcards definition ... Unparsable value: '0.456'"), and so did every per-channel trial."""
    work, _, jobs, _ = study_run
    reference = (
        work
        / "results/slurm-study/resnet18/cells/mean~0.485_0.456_0.406/std~0.229_0.224_0.225/seed~1998.json"
    )
    assert read_result(reference).mean == [0.485, 0.456, 0.406]
    trials = trial_cells(work, "resnet18", 1)
    assert all("_" in m and "," not in m for m, _ in trials), trials  # per channel, no comma
    rgb_jobs = cell_jobs(jobs, "resnet18")
    for mean, std in trials:
        assert [j for j in rgb_jobs if names(j, mean, std) and j["State"] == "COMPLETED"], (
            mean,
            rgb_jobs,
        )
    # the RGB study: 6 parameters, warm-started from the equal-channel cells inside its space
    trials = pd.read_parquet(work / "results/slurm-study/resnet18/optuna/trials.parquet")
    assert {f"params_{a}_{c}" for a in ("mean", "std") for c in "rgb"} <= set(trials.columns)
    warm = json.loads((work / "results/slurm-study/resnet18/optuna/warmstart.json").read_text())
    assert warm["added"] == 1 and warm["space"]["channels"] == 3  # the grid cell; the per-channel one is not
    assert (trials["state"] == "COMPLETE").sum() == warm["added"] + 1
    best = json.loads((work / "results/slurm-study/resnet18/optuna/best.json").read_text())
    assert len(best["mean"]) == 3
    summary = (work / "results/slurm-study/resnet18/tables/summary.md").read_text()
    assert "reference: imagenet | 0.485_0.456_0.406 | 0.229_0.224_0.225" in summary


def test_two_refinement_rounds_train_their_trials_as_gpu_jobs(study_run):
    """Optuna in rounds through SLURM: 2 trials in rounds of 1, each trial cell a job with
    one GPU; the study file is only touched by the local ask and tell rules."""
    work, _, jobs, _ = study_run
    out = work / "results/slurm-study/lenet/optuna"
    for mean, std in trial_cells(work, "lenet", 2):
        assert [j for j in cell_jobs(jobs, "lenet") if names(j, mean, std)], (mean, jobs)
    told = json.loads((out / "round~1/told.json").read_text())
    warm = json.loads((out / "warmstart.json").read_text())
    assert told["finished"] == warm["added"] + 2


def test_a_killed_job_resumes_from_its_checkpoint(tmp_path):
    """scancel mid-run, then a new workflow run: the cell resumes after its last epoch.
    (Plugin 2.8.0 reads sacct's 'CANCELLED by <uid>' as still running, so the first
    snakemake is stopped with Ctrl-C, as a user would; a TIMEOUT is seen and retried.)"""
    epochs = 3
    cfg = slurm_config(
        "slurm-resume",
        grid={"mean": [0.1307], "std": [0.3081]},
        references={},
        epochs=epochs,
        train_subset=1600,
        deterministic=True,
    )
    write_config(tmp_path, cfg)
    whole = _whole_run(epochs, 1600)
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
    # the status: the cell's job was cancelled, its SLURM log and the rerun command
    previous = dict(os.environ)
    os.environ.update(ENV)
    try:
        jobs = slurm_queue.query_jobs(tmp_path)
        status = study_status(validate_config(copy.deepcopy(cfg)), tmp_path, jobs)
    finally:
        os.environ.clear()
        os.environ.update(previous)
    lenet = status["models"]["lenet"]
    assert lenet["failed_cells"], (jobs, {k: v for k, v in lenet.items() if k != "_states"})
    (failed,) = lenet["failed_cells"]
    assert failed["job"] == "cancelled" and Path(failed["slurm_log"]).exists(), failed
    text = format_status(status, "snakemake --profile slurm")
    assert f"SLURM job {failed['job_id']} cancelled, its log {failed['slurm_log']}" in text, text
    assert (
        "rerun: snakemake --profile slurm results/slurm-resume/lenet/cells/mean~0.1307/std~0.3081/seed~1998.json"
        in text
    )

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
    reference = whole.result(timeout=600)
    assert [e.test_accuracy for e in result.epochs] == [e.test_accuracy for e in reference.epochs]
    assert [e.train_loss for e in result.epochs] == [e.train_loss for e in reference.epochs]


def _run_releasing_requeued(
    work: Path, cfg: dict, *args: str, during=None
) -> tuple[subprocess.CompletedProcess, list]:
    """snakemake --profile slurm on ``work`` while, every second, a job SLURM requeued is let
    start at once (SLURM holds a requeued job for ~2 minutes: BeginTime), the status is taken
    (cell states, failed and lost counts) and ``during(seconds, jobs)`` may act on the queue."""
    proc = subprocess.Popen(slurm_command(work, *args), cwd=work, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    polls, started, config, held = [], time.time(), validate_config(copy.deepcopy(cfg)), {}
    previous = dict(os.environ)
    os.environ.update(ENV)
    try:
        while proc.poll() is None and time.time() - started < HARD_LIMIT:
            queue = subprocess.run(["squeue", "-h", "-o", "%i|%T|%r"], capture_output=True, text=True,
                                   env=ENV).stdout.split()  # fmt: skip
            for line in queue:
                job, state, reason = line.split("|")
                # its old run cleans up first (5 s): a job started at once is refused (credential revoked)
                if (
                    state == "PENDING"
                    and reason == "BeginTime"
                    and time.time() - held.setdefault(job, time.time()) > 5
                ):
                    subprocess.run(
                        ["scontrol", "update", f"JobId={job}", "StartTime=now"], env=ENV, check=True
                    )
                    held.pop(job)
            lenet = study_status(config, work, slurm_queue.query_jobs(work))["models"]["lenet"]
            polls.append((round(time.time() - started, 1), queue, lenet["queued"], lenet["running"],
                          len(lenet["failed_cells"]), lenet["lost"]))  # fmt: skip
            if during is not None:
                during(time.time() - started, queue)
            time.sleep(1)
    finally:
        os.environ.clear()
        os.environ.update(previous)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), polls


def _whole_run(epochs: int, subset: int, on_step=None) -> Future:
    """The cell trained in one go, here (deterministic on the CPU): what every interrupted run
    must equal. It trains in a thread of this process while the test waits on SLURM (the
    SLURM tests run one after the other: their waits are the suite's longest); ``on_step`` as
    the engine's."""
    tr = mnist.load_mnist(SMALL_MNIST, train=True, limit=subset)
    te = mnist.load_mnist(SMALL_MNIST, train=False, limit=200)
    return ThreadPoolExecutor(max_workers=1).submit(
        train_one,
        CellSpec("lenet", "mnist", "0.1307", "0.3081", [0.1307], [0.3081], 1998),
        batches.TensorData.from_uint8(tr.images, tr.labels),
        batches.TensorData.from_uint8(te.images, te.labels),
        TrainConfig(epochs=epochs, threads=1, deterministic=True),
        on_step,
    )


CELL = "lenet/cells/mean~0.1307/std~0.3081/seed~1998.json"
CELL_LOG = "lenet/train/mean~0.1307/std~0.3081/seed~1998.log"


_STOPPED_EARLY = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[2])
from normsweep.cluster.queue import requeue_self
restart, out = os.environ.get("SLURM_RESTART_COUNT", "0"), open(sys.argv[1], "a", buffering=1)
def stop(signum, frame):
    out.write(f"{restart} stopped, requeued {requeue_self(progressed=False)}\\n")
    sys.exit(1)
signal.signal(signal.SIGTERM, stop)
out.write(f"{restart} started\\n")
if restart == "0":
    time.sleep(120)
"""


def test_a_job_stopped_before_it_trained_requeues_itself_only_when_preempted(tmp_path):
    """A try stopped before its first step (a signal while it starts) has made no progress: at
    a time limit's warning (SIGTERM to the job's step, the job RUNNING) it must not requeue
    itself (it would loop at every start), but preempted it must, since SLURM does not requeue
    a job that ends within its GraceTime (measured: it ends COMPLETED or FAILED). The job here
    is requeue_self's caller alone, no torch: what the rule scripts do after the engine stops."""
    script = tmp_path / "job.py"
    script.write_text(_STOPPED_EARLY)
    since = since_now()

    def submit(name: str) -> tuple[str, Path]:
        out = tmp_path / f"{name}.txt"
        wrap = f"srun {BIN / 'python'} {script} {out} {ROOT / 'src'}"
        job = subprocess.run(["sbatch", "--parsable", "-p", PARTITION, f"--gres=gpu:{GPU_MODEL}:1", "-c", "1",
                              "--mem=200", "-t", "2", "-J", name, "-o", str(tmp_path / f"{name}.log"),
                              "--wrap", wrap], env=ENV, capture_output=True, text=True, check=True)  # fmt: skip
        return job.stdout.strip().split(";")[0], out

    def wait_for(out: Path, text: str, seconds: float = 90) -> str:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if out.exists() and text in out.read_text():
                return out.read_text()
            time.sleep(0.3)
        raise AssertionError(f"no {text!r} in {out}: {out.read_text() if out.exists() else 'none'}")

    def state_after(job: str, wanted: str, seconds: float = 30) -> str:
        deadline = time.time() + seconds
        while (now := {j["JobID"]: j["State"] for j in sacct_jobs(since)}.get(job, "")) != wanted:
            if time.time() > deadline:
                break
            time.sleep(0.5)
        return now

    # a time limit's early warning: SIGTERM to the step, no preemption
    warned, warned_out = submit("warned")
    wait_for(warned_out, "0 started")
    subprocess.run(["scancel", "--signal=TERM", warned], env=ENV, check=True)
    assert wait_for(warned_out, "stopped").endswith("0 stopped, requeued None\n")
    assert state_after(warned, "FAILED") == "FAILED"

    # preempted by a job of the higher-tier partition: requeued, runs again under its id
    preempted, preempted_out = submit("preempted")
    wait_for(preempted_out, "0 started")
    preempt_the_node("true")
    assert f"0 stopped, requeued {preempted}\n" in wait_for(preempted_out, "stopped")
    deadline = time.time() + 60
    while "1 started" not in preempted_out.read_text() and time.time() < deadline:
        # SLURM holds a requeued job ~2 minutes (BeginTime); its old run cleans up first
        time.sleep(5)
        subprocess.run(["scontrol", "update", f"JobId={preempted}", "StartTime=now"], env=ENV,
                       capture_output=True)  # fmt: skip
    wait_for(preempted_out, "1 started", 30)
    assert state_after(preempted, "COMPLETED") == "COMPLETED"


def test_a_preempted_cell_past_its_time_limit_finishes_through_requeues_to_the_same_numbers(tmp_path):
    """One cell, preempted early and then stopped by a 1-minute time limit: each time SIGTERM
    reaches the rule script through the plugin's srun step (preemption: PreemptMode=REQUEUE,
    GraceTime 30 s, by a job of the higher-tier partition; the limit: --signal=TERM@5, where the
    profile asks 120 s), the run saves at its next batch boundary, the job is requeued (by SLURM,
    or by itself at the limit) and resumes exactly there, with no retry spent (--retries 0). The
    status shows it queued or running at every poll, never failed or lost; nothing is trained
    twice; across the preemption the numbers are those of an uninterrupted run (its first
    epoch, which the preemption stopped, run here first; the tests of normsweep.training resume
    at every kind of stop to the last digit, over several epochs). The work is sized from the
    CPU time of that run's steps (about 70 CPU-seconds in all, where a try is stopped 25-55 s
    after it starts), so that it outlasts a try on any machine, loaded or not."""
    subset = 6000
    # an uninterrupted run's first epoch (more epochs change none of it), beside the study
    steps: list[float] = []
    whole = _whole_run(1, subset, on_step=lambda *_: steps.append(time.thread_time()))
    while len(steps) < 30 and not whole.done():
        time.sleep(0.1)
    # CPU seconds (not wall: the load changes) of steps 10-30, after the first steps' warm-up,
    # for an epoch's batches and its test pass
    per_epoch = (steps[29] - steps[9]) / 20 * math.ceil(subset / 64) * 1.1
    epochs = max(3, min(40, math.ceil(70 / per_epoch)))
    cfg = slurm_config("slurm-limit", grid={"mean": [0.1307], "std": [0.3081]}, references={}, epochs=epochs,
                       train_subset=subset, deterministic=True)  # fmt: skip
    write_config(tmp_path, cfg)
    limit = [
        "--retries",
        "0",
        "--set-resources",
        "train_cell:runtime=1",
        "train_cell:slurm_extra='--signal=TERM@5'",
    ]
    log_file = tmp_path / "logs/slurm-limit" / CELL_LOG
    sent, since = [], since_now()

    def preempt(seconds, queue):
        if not sent and log_file.exists() and "train / 200 test images" in log_file.read_text():
            time.sleep(1.5)  # into epoch 1
            sent.append(preempt_the_node("sleep 5"))

    run, polls = _run_releasing_requeued(tmp_path, cfg, *limit, during=preempt)
    assert run.returncode == 0 and sent, run.stdout[-4000:]
    log = log_file.read_text()
    # a stop inside an epoch (saved at its next batch) or during its evaluation (saved after it)
    stops = re.findall(
        r"earlier stop \d+: SIGTERM (in epoch \d+ after batch \d+|after epoch \d+), .* SLURM job (\d+)", log
    )
    assert len(stops) >= 2 and stops[0][0].startswith("in epoch 1 after batch"), (
        log
    )  # the preemption, the limit
    # the log holds the last try (snakemake starts a job's log afresh): it resumed where the last stop saved
    where = re.fullmatch(r"in epoch (\d+) after batch (\d+)|after epoch (\d+)", stops[-1][0])
    at = f"after epoch {int(where[1]) - 1}, {where[2]} batches into epoch {where[1]}" if where[1] else None
    resumed = re.findall(r"resumed from \S+ (after epoch \d+(?:, \d+ batches into epoch \d+)?)\n", log)
    # or a stop that came just after the last epoch: the finished checkpoint kept, the job
    # requeued, and its last try wrote the results from it
    assert resumed and resumed[-1] in (at or f"after epoch {where[3]}", f"after epoch {epochs}"), log
    assert len({job for _, job in stops}) == 1  # one SLURM job, requeued: no retry by snakemake
    assert all(failed == 0 and lost == 0 for *_, failed, lost in polls), polls
    assert any(queued for _, _, queued, *_ in polls[1:]), polls  # the requeued cell was shown queued
    jobs = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-S", since, "-o", "JobID,Partition,State"],
                          capture_output=True, text=True, env=ENV).stdout.split()  # fmt: skip
    cell_jobs = [j for j in jobs if f"|{PARTITION}|" in j]
    assert len({j.split("|")[0] for j in cell_jobs}) == 1, jobs  # requeued, never resubmitted
    assert any(j.endswith(("|REQUEUED", "|PREEMPTED")) for j in cell_jobs), jobs
    result = read_result(tmp_path / "results/slurm-limit" / CELL)
    assert [e.epoch for e in result.epochs] == list(range(1, epochs + 1))
    reference = whole.result(timeout=600)
    assert [e.test_accuracy for e in result.epochs[:1]] == [e.test_accuracy for e in reference.epochs]
    assert [e.train_loss for e in result.epochs[:1]] == [e.train_loss for e in reference.epochs]
    print(
        f"\n{epochs} epochs: {len(stops) + 1} tries of one job, stopped {[w for w, _ in stops]}; sacct {cell_jobs}"
    )


def test_the_installed_profile_takes_the_queue_cap_packs_are_one_gpu_jobs_and_a_failure_names_its_log(
    tmp_path,
):
    """`snakemake --profile slurm`, as cluster users type it, under MaxSubmitJobs=2 on the
    user's association (sacctmgr, enforced; over it sbatch refuses a job:
    `AssocMaxSubmitJobLimit`, measured). install_profile.py reads the cap into the profile's
    jobs, plan.py says the waves, and the study runs with never more than 2 jobs queued: LeNet's
    4 cells in packs of 2 (2 jobs of one GPU each, every cell its own result and log) beside a
    model whose job fails (device cuda:7), which fails the run and names its log: 3 jobs."""
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    cap = ["sacctmgr", "-i", "modify", "user", user, "set"]
    subprocess.run([*cap, "MaxSubmitJobs=2"], env=ENV, check=True, capture_output=True)
    try:
        home, work = tmp_path / "xdg", tmp_path / "work"
        # the site's settings come from the installed profile only
        env = {
            **{k: v for k, v in ENV.items() if not k.startswith("NORMSWEEP_SLURM_")},
            "XDG_CONFIG_HOME": str(home),
        }
        cfg = slurm_config("slurm-named", grid={"mean": [0.0, 0.5, 1.0], "std": [0.3]}, train_subset=100,
                           test_subset=100)  # fmt: skip
        cfg["cluster"]["pack"] = 2
        cfg["models"]["broken"] = copy.deepcopy(cfg["models"]["lenet"])
        cfg["models"]["broken"].update(arch="lenet", grid={"mean": [0.0], "std": [1.0]}, references={})
        cfg["models"]["broken"]["training"]["device"] = "cuda:7"
        write_config(work, cfg)
        before = run_snakemake(work, "-n", profile="slurm", env=env)
        assert before.returncode != 0 and "profile" in before.stderr  # not installed yet: snakemake says so
        install = [str(BIN / "python"), str(ROOT / "scripts/install_profile.py"), "--partition", PARTITION,
                   "--gpu-model", GPU_MODEL]  # fmt: skip
        installed = subprocess.run(install, capture_output=True, text=True, env=env, timeout=60)
        assert installed.returncode == 0 and "at most 2 jobs at once" in installed.stdout, (
            installed.stdout + installed.stderr
        )
        assert yaml.safe_load((home / "snakemake/slurm/config.yaml").read_text())["jobs"] == 2
        planned = subprocess.run([str(BIN / "python"), str(ROOT / "scripts/plan.py"), "--directory", str(work)],
                                 capture_output=True, text=True, env=env, cwd=work)  # fmt: skip
        assert "cap of 2 jobs at once: 3 jobs in about 2 waves" in planned.stdout, (
            planned.stdout + planned.stderr
        )
        since = since_now()
        proc = subprocess.Popen(slurm_command(work, "--retries", "0", profile="slurm"), cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        most = 0
        while proc.poll() is None:
            queued = subprocess.run(
                ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=ENV
            ).stdout
            most = max(most, len(queued.split()))
            time.sleep(0.5)
        out, _ = proc.communicate()
    finally:
        subprocess.run([*cap, "MaxSubmitJobs=-1"], env=ENV, check=True, capture_output=True)
    assert "AssocMaxSubmitJobLimit" not in out and 1 < most <= 2, (most, out[-2000:])
    # the failing job (a pack of its one cell): the run fails, snakemake names the job's log and shows its error
    assert proc.returncode != 0
    assert "Logfile logs/slurm-named/broken/packs/seed~1998/pack~" in out and "no CUDA GPU" in out, [
        line for line in out.splitlines() if "broken" in line or "rror" in line
    ]
    assert re.search(r"SLURM.*(job|Job).*\d+", out)
    time.sleep(2)
    jobs = [
        j
        for j in sacct_jobs(since)
        if "train_" in j["Comment"] + j["JobName"] and "broken" not in j["Comment"]
    ]
    print(
        "\nsacct (packs):\n" + "\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['AllocTRES']}" for j in jobs)
    )
    print(f"cap of 2: at most {most} jobs queued at once, no submission refused")
    packs = [j for j in jobs if "train_pack" in j["Comment"] + j["JobName"]]
    assert len(packs) == 2 and all(
        j["State"] == "COMPLETED" and j["Partition"] == PARTITION for j in packs
    ), jobs
    assert all("gres/gpu=1" in j["AllocTRES"] for j in packs), jobs
    results = [read_result(p) for p in (work / "results/slurm-named/lenet/cells").rglob("seed~*.json")]
    assert len(results) == 4 and all(r.pack_size == 2 for r in results)
    assert "epoch 1/1" in (work / "logs/slurm-named/lenet/train/mean~0/std~0.3/seed~1998.log").read_text()
    # installing again is idempotent; a profile the user changed is kept unless --force
    again = subprocess.run(
        [*install[:2], "--partition", "other"], capture_output=True, text=True, env=env, timeout=60
    )
    assert again.returncode == 1 and "--force" in again.stderr


# Last, the two shortest tests: pytest-xdist queues the next file behind a worker's last two
# tests (its heuristic), so a file waits behind these seconds, not behind the long tests above.
def test_a_request_over_the_nodes_cpus_is_refused_before_anything_is_submitted(tmp_path):
    """Cpus_per_gpu 4 on this 2-CPU node. SLURM would refuse every job
    at submission ("Requested node configuration is not available"); the plan and the workflow
    name the key first."""
    cfg = slurm_config("slurm-too-big", grid={"mean": [0.0], "std": [1.0]}, references={})
    cfg["cluster"]["cpus_per_gpu"] = 4
    write_config(tmp_path, cfg)
    plan = subprocess.run([str(BIN / "python"), str(ROOT / "scripts/plan.py"), "--directory", str(tmp_path),
                           "--configfile", str(tmp_path / "config/config.yaml")],
                          capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert (
        f"config key 'cluster.cpus_per_gpu': 4 (4 CPUs per job) but the nodes of partition {PARTITION} have at most 2 CPUs; use 2"
        in plan.stdout
    )
    since = since_now()
    run = run_snakemake(tmp_path)
    assert run.returncode != 0 and "config key 'cluster.cpus_per_gpu'" in run.stdout + run.stderr
    time.sleep(1)
    assert not [j for j in sacct_jobs(since) if "slurm-too-big" in j["Comment"] or "train_" in j["Comment"]]


def test_the_table_and_heatmap_appear(study_run):
    work, _, _, _ = study_run
    assert (work / "results/slurm-study/lenet/tables/cells.parquet").exists()
    assert (work / "results/slurm-study/plots/heatmap.png").stat().st_size > 20_000
    summary = json.loads((work / "results/slurm-study/lenet/tables/summary.json").read_text())["lenet"]
    assert summary["n_results"] == 2
    log = (work / "logs/slurm-study/lenet/train/mean~0/std~0.3/seed~1998.log").read_text()
    assert "epoch 1/1" in log
