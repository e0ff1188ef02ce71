"""scripts/status.py: a study's state from its files while it runs."""

import json
import subprocess
import sys

import matplotlib.image as mpimg
import yaml
from test_results import make_result

from conftest import ROOT, SMALL_MNIST
from normsweep.cluster.queue import Job, comment
from normsweep.core import cells
from normsweep.core.results import EpochRecord, write_result
from normsweep.monitoring.report import format_status
from normsweep.monitoring.status import study_status
from normsweep.study.config import validate_config


def study_config(pack=1):
    return validate_config(
        {
            "study": "watch",
            "cluster": {"pack": pack},
            "models": {
                "lenet": {
                    "data": str(SMALL_MNIST),
                    "grid": {"mean": [0.0, 1.0, 2.0], "std": [0.5, 1.0]},
                    "references": {"none": "none"},
                    "training": {"epochs": 3},
                    "optuna": {"n_trials": 4, "batch": 2},
                }
            },
        }
    )


def cell(mean, std):
    return cells.Cell("lenet", mean, std, 1998)


def make_study(work):
    """Finished (2), diverged (1), running (checkpoint, and log only), failed (1), pending (1)."""
    epochs = [EpochRecord(e, 0.9 + e / 100, 0.1, 0.2, 1.0, 12.0) for e in (1, 2, 3)]
    for c, acc in ((cell("0", "0.5"), 0.93), (cell("0", "1"), 0.92)):
        write_result(work / c.result_path("watch"), make_result(acc, mean_label=c.mean, std_label=c.std,
                                                                seed=1998, epochs=epochs))  # fmt: skip
    diverged = cell("2", "0.5")
    write_result(work / diverged.result_path("watch"), make_result(float("nan"), status="diverged",
                 mean_label="2", std_label="0.5", mean=[2.0], std=[0.5], seed=1998, epochs=epochs[:1]))  # fmt: skip
    logs = work / cells.logs_dir("watch")
    running = cell("1", "0.5")  # its checkpoint and a log with one epoch
    (work / running.checkpoint_path("watch")).parent.mkdir(parents=True)
    (work / running.checkpoint_path("watch")).write_bytes(b"x")
    log = logs / cells.CELL_LOG.format(**running.wildcards)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "2026-11-23 normsweep.train INFO epoch 1/3: train loss 0.3, test loss 0.1, test accuracy 0.9512, lr 1, 12.0 s\n"
    )
    failed = cell("1", "1")
    log = logs / cells.CELL_LOG.format(**failed.wildcards)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "2026-11-23 normsweep.training.runner INFO cell lenet mean=[1.0] std=[1.0] seed=1998\n"
        "2026-11-23 normsweep ERROR cell {'model': 'lenet'} failed\nTraceback (most recent call last):\n"
        "RuntimeError: device 'cuda:0' asked for, but torch sees no CUDA GPU here\n"
    )
    asked = work / cells.results_dir("watch") / "lenet/optuna/round~0/asked.json"
    asked.parent.mkdir(parents=True)
    asked.write_text(json.dumps({"round": 0, "trials": [{"mean": "0.3", "std": "0.4", "seed": 1998}] * 2}))
    # pending: cell("2", "1") and the "none" reference


def test_counts_running_failed_and_the_time_left(tmp_path):
    make_study(tmp_path)
    status = study_status(study_config(), tmp_path)
    m = status["models"]["lenet"]
    # the asked round's trial cell (0.3, 0.4) counts too (it was invisible)
    assert {k: m[k] for k in ("done", "diverged", "running", "failed", "pending", "cells", "trial_cells")} == {
        "done": 2, "diverged": 1, "running": 1, "failed": 1, "pending": 3, "cells": 8, "trial_cells": 1
    }  # fmt: skip
    assert m["running_cells"] == [{"cell": "results/watch/lenet/cells/mean~1/std~0.5/seed~1998.json",
                                   "origin": "configured", "epoch": 1, "of": 3, "accuracy": 0.9512, "job": "",
                                   "job_id": 0}]  # fmt: skip
    assert m["seconds_per_epoch"] == 12.0
    # 2 epochs of the running cell, 3 pending cells, then the round not asked yet (2 trials) and
    # the best point's 3 seeds, one cell at a time: 2 + 3 * (3 + 2 + 3) epochs of 12 s
    assert m["epochs_left"] == 2 + 3 * 8 and m["seconds_left"] == 26 * 12.0
    assert (
        m["optuna"]["rounds_asked"] == 1 and m["optuna"]["rounds"] == 2 and m["optuna"]["trials_asked"] == 2
    )
    text = format_status(status, "snakemake --profile profiles/slurm")
    assert (
        "2 done, 1 running, 1 failed, 1 diverged, 3 pending, of 8 cells (with 1 refinement trial cells and 0 retrained seeds)"
        in text
    )
    assert "FAILED results/watch/lenet/cells/mean~1/std~1/seed~1998.json" in text
    assert "torch sees no CUDA GPU here" in text  # the end of its log
    assert (
        "rerun: snakemake --profile profiles/slurm results/watch/lenet/cells/mean~1/std~1/seed~1998.json"
        in text
    )
    assert "time left: about 5 min 12 s" in text


def test_the_script_draws_the_progress_and_speaks_json(tmp_path):
    make_study(tmp_path)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_config()))
    run = subprocess.run([sys.executable, str(ROOT / "scripts/status.py"), "--configfile", "study.yaml", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    assert status["models"]["lenet"]["failed"] == 1 and status["figure"].endswith("plots/progress.png")
    image = mpimg.imread(tmp_path / "results/watch/plots/progress.png")
    assert image.shape[0] > 400 and image[..., :3].std() > 0.05


def test_a_study_that_never_started_says_what_to_run(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_config()))
    run = subprocess.run([sys.executable, str(ROOT / "scripts/status.py"), "--configfile", "study.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (
        "nothing has run yet: start it with `snakemake --profile profiles/local --configfile study.yaml`"
        in run.stdout
    )
    assert not (tmp_path / "results/watch/plots/progress.png").exists()


def test_the_quick_read_of_a_result_equals_the_full_one(tmp_path):
    make_study(tmp_path)
    from normsweep.monitoring.status import cell_state

    for c in (cell("0", "0.5"), cell("2", "0.5")):  # done, diverged
        quick = cell_state(c, "watch", tmp_path, set(), timed=False)
        full = cell_state(c, "watch", tmp_path, set(), timed=True)
        assert (quick.state, quick.epochs) == (full.state, full.epochs)
        assert quick.accuracy == full.accuracy or (
            quick.accuracy != quick.accuracy and full.accuracy != full.accuracy
        )
        assert full.seconds_per_epoch and not quick.seconds_per_epoch


def test_rounds_count_in_number_order_from_eleven_rounds_on(tmp_path):
    """round~10 comes after round~9 (as text it sorts before round~2): the finished trials are
    the last round's."""
    folder = tmp_path / cells.results_dir("watch") / "lenet/optuna"
    for number in range(11):
        (folder / f"round~{number}").mkdir(parents=True)
        (folder / f"round~{number}/asked.json").write_text(json.dumps({"trials": [{}, {}]}))
        (folder / f"round~{number}/told.json").write_text(json.dumps({"finished": 2 * (number + 1)}))
    cfg = study_config()
    cfg["models"]["lenet"]["optuna"].update(n_trials=24, batch=2)
    o = study_status(cfg, tmp_path)["models"]["lenet"]["optuna"]
    assert (o["rounds_told"], o["trials_asked"], o["finished_trials"], o["rounds"]) == (11, 22, 22, 12)


def test_members_of_a_failed_pack_are_failed_with_the_packs_log(tmp_path):
    """A pack's traceback is in the pack's log; its members' own logs end with an epoch line."""
    cfg = study_config(pack=3)
    todo = cells.study_cells("lenet", cfg["models"]["lenet"])
    packs = cells.plan_packs(todo, 3, "watch", done=lambda p: (tmp_path / p).exists())
    broken, fine = packs[0], packs[1]
    for pack, tail in ((broken, "Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory\n"),
                       (fine, "")):  # fmt: skip
        log = tmp_path / cells.logs_dir("watch") / cells.PACK_LOG.format(**pack.wildcards)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"2026-11-23 normsweep.pack INFO pack {pack.id}: 3 cells\n{tail}")
        for member in pack.cells:
            own = tmp_path / member.log_path("watch")
            own.parent.mkdir(parents=True, exist_ok=True)
            own.write_text("2026-11-23 normsweep.pack INFO epoch 1/3: train loss 0.3, test loss 0.1, "
                           "test accuracy 0.9512, lr 1, 12.0 s (pack x of 3 cells)\n")  # fmt: skip
    status = study_status(cfg, tmp_path)
    m = status["models"]["lenet"]
    assert m["failed"] == len(broken.cells) and m["running"] == len(fine.cells)
    failed = {f["cell"]: f for f in m["failed_cells"]}
    assert set(failed) == {c.result_path("watch") for c in broken.cells}
    assert all(f["log"].endswith(f"pack~{broken.id}.log") and "CUDA out of memory" in f["tail"][-1]
               for f in failed.values())  # fmt: skip


def test_the_queue_says_queued_running_cancelled_and_lost(tmp_path):
    """Without a cluster: what squeue/sacct say of each cell's job, joined by the
    job's comment (tests/test_slurm.py does it on the real SLURM)."""
    make_study(tmp_path)
    log = tmp_path / cells.logs_dir("watch") / cells.CELL_LOG.format(**cell("1", "1").wildcards)

    def job(job_id, state, mean, std, reason="", start=0.0):
        return Job(job_id, state, reason, "node1" if state == "RUNNING" else "", "1:02",
                   comment("train_cell", "lenet", mean, std, 1998), str(tmp_path), start)  # fmt: skip

    jobs = {j.comment: j for j in (job(7, "PENDING", "2", "1", "Priority"), job(5, "RUNNING", "1", "0.5"),
                                   job(3, "CANCELLED", "1", "1", start=log.stat().st_mtime - 10),
                                   job(2, "COMPLETED", "0", "0.5"))}  # fmt: skip
    m = study_status(study_config(), tmp_path, jobs)["models"]["lenet"]
    assert {k: m[k] for k in ("done", "queued", "running", "failed", "lost", "pending")} == {
        "done": 2, "queued": 1, "running": 1, "failed": 1, "lost": 0, "pending": 2}  # fmt: skip
    assert m["queued_cells"][0]["job"] == "queued (Priority)" and m["queued_cells"][0]["job_id"] == 7
    assert m["running_cells"][0]["job"] == "running on node1 for 1:02"
    (failed,) = m["failed_cells"]
    assert failed["job"] == "cancelled" and failed["slurm_log"] == str(
        tmp_path / ".snakemake/slurm_logs/rule_train_cell/lenet_1_1_1998/3.log"
    )
    # the running cell's job is gone from the queue, and no failure ended it: lost
    del jobs[comment("train_cell", "lenet", "1", "0.5", 1998)]
    status = study_status(study_config(), tmp_path, jobs)
    assert status["models"]["lenet"]["lost"] == 1
    text = format_status(status, "snakemake --profile profiles/slurm")
    assert "LOST results/watch/lenet/cells/mean~1/std~0.5/seed~1998.json" in text
    assert (
        "rerun: snakemake --profile profiles/slurm results/watch/lenet/cells/mean~1/std~0.5/seed~1998.json"
        in text
    )
    assert "SLURM job 3 cancelled" in text
    # an ended job older than the cell's log: another study's job (same folder, same wildcards)
    old = job(3, "CANCELLED", "1", "1", start=log.stat().st_mtime + 100)
    m = study_status(study_config(), tmp_path, {old.comment: old})["models"]["lenet"]
    assert m["failed_cells"][0]["job"] == ""  # failed by its own log, not by that job


#: Every job state squeue(1) documents, and what the status makes of a cell whose job is in it.
SQUEUE_STATES = {
    "PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
    "REQUEUE_FED": "queued", "RESV_DEL_HOLD": "queued", "SPECIAL_EXIT": "queued", "SUSPENDED": "queued",
    "RUNNING": "running", "COMPLETING": "running", "STOPPED": "running", "SIGNALING": "running",
    "STAGE_OUT": "running", "RESIZING": "running",
    "BOOT_FAIL": "failed", "CANCELLED": "failed", "DEADLINE": "failed", "FAILED": "failed",
    "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed", "PREEMPTED": "failed", "TIMEOUT": "failed",
    "COMPLETED": "lost", "REVOKED": "lost",  # ended without its result: nothing holds the cell
}  # fmt: skip


def test_every_slurm_state_maps_to_a_state_of_ours_and_a_held_job_is_never_lost(tmp_path):
    """STOPPED, SIGNALING, STAGE_OUT, RESIZING, REQUEUE_HOLD, REQUEUE_FED, RESV_DEL_HOLD
    and SPECIAL_EXIT were neither queued nor active, so such a cell was "lost" with a rerun
    command that could start a second job on its checkpoint. State by state: the cell whose job
    is in it is queued, running or failed as SLURM says, and never lost while SLURM holds it
    (a state unknown to this version counts as held)."""
    make_study(tmp_path)
    log = tmp_path / cells.logs_dir("watch") / cells.CELL_LOG.format(**cell("2", "1").wildcards)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("2026-11-23 normsweep.training.runner INFO cell lenet mean=[2.0] std=[1.0] seed=1998\n")
    for state, ours in [*SQUEUE_STATES.items(), ("SOME_NEW_STATE", "running")]:
        job = Job(9, state, "", "node1", "0:10", comment("train_cell", "lenet", "2", "1", 1998), str(tmp_path),
                  log.stat().st_mtime - 10)  # fmt: skip
        m = study_status(study_config(), tmp_path, {job.comment: job})["models"]["lenet"]
        listed = {
            name: [c["cell"] for c in m[f"{name}_cells"]] for name in ("queued", "running", "failed", "lost")
        }
        where = [name for name, found in listed.items() if cell("2", "1").result_path("watch") in found]
        assert where == [ours], (state, where)


def test_a_pack_job_is_counted_as_its_members(tmp_path):
    """A pack's job (train_pack) queued or running stands for each of its cells; a refinement
    round's pack (train_round_pack) for the round's trial cells."""
    make_study(tmp_path)
    config = study_config(pack=2)
    configured = cells.study_cells("lenet", config["models"]["lenet"])  # as the workflow packs them
    first = cells.plan_packs(configured, 2, "watch", done=lambda p: (tmp_path / p).exists())[0]
    pack_job = Job(11, "PENDING", "Resources", "", "0:00", comment("train_pack", "lenet", 1998, first.id),
                   str(tmp_path))  # fmt: skip
    round_job = Job(
        12, "RUNNING", "", "node1", "0:05", comment("train_round_pack", "lenet", 0), str(tmp_path)
    )
    m = study_status(config, tmp_path, {j.comment: j for j in (pack_job, round_job)})["models"]["lenet"]
    queued = {q["cell"] for q in m["queued_cells"]}
    assert queued == {c.result_path("watch") for c in first.cells} and len(queued) == 2
    assert all(q["job"] == "queued (Resources)" and q["job_id"] == 11 for q in m["queued_cells"])
    trial = cell("0.3", "0.4").result_path("watch")
    assert {r["cell"]: r["job_id"] for r in m["running_cells"]}[trial] == 12


def test_a_pack_killed_before_its_members_wrote_a_line_carries_its_fate_to_them(tmp_path):
    """An evaluation pack never writes member logs (a training pack only at an
    epoch's end), and whether its ended job ran for this study was read from the members'
    logs: a 2-cell pack killed for memory showed pending 2, failed 0, no job, no SLURM log. The
    pack's own log (written as its job starts) says so now, and its members are failed with
    the job's fate, its SLURM log and the rerun command."""
    make_study(tmp_path)
    config = study_config(pack=2)
    configured = cells.study_cells("lenet", config["models"]["lenet"])
    first = cells.plan_packs(configured, 2, "watch", done=lambda p: (tmp_path / p).exists())[0]
    pack_log = tmp_path / cells.logs_dir("watch") / cells.PACK_LOG.format(**first.wildcards)
    pack_log.parent.mkdir(parents=True, exist_ok=True)
    pack_log.write_text("2026-11-23 normsweep.training.runner INFO pack: 2 cells of lenet\n")
    job = Job(21, "OUT_OF_MEMORY", "", "node1", "0:40", comment("train_pack", "lenet", 1998, first.id),
              str(tmp_path), pack_log.stat().st_mtime - 5)  # fmt: skip
    m = study_status(config, tmp_path, {job.comment: job})["models"]["lenet"]
    failed = {f["cell"]: f for f in m["failed_cells"]}
    for member in first.cells:
        entry = failed[member.result_path("watch")]
        assert entry["job"] == "out of memory" and entry["job_id"] == 21
        assert entry["slurm_log"].endswith(f"rule_train_pack/lenet_1998_{first.id}/21.log")
    text = format_status(study_status(config, tmp_path, {job.comment: job}), "snakemake --profile slurm")
    assert f"rerun: snakemake --profile slurm {first.cells[0].result_path('watch')}" in text


def test_packs_of_a_grid_extended_during_a_refinement_are_the_workflows(tmp_path):
    """The workflow packs the configured cells still to do; the status planned over those and
    the refinement's unfinished trial cells, so while a trial was open the ids differed and a
    running, failed or queued pack showed its cells as pending. Both plan with one function."""
    config = study_config(pack=2)
    for c in cells.study_cells("lenet", config["models"]["lenet"])[:6]:  # the first grid, finished
        write_result(tmp_path / c.result_path("watch"), make_result(0.9, mean_label=c.mean, std_label=c.std))
    asked = tmp_path / cells.results_dir("watch") / "lenet/optuna/round~0/asked.json"
    asked.parent.mkdir(parents=True)
    trials = [{"mean": "0.3", "std": "0.4", "seed": 1998}, {"mean": "0.7", "std": "0.6", "seed": 1998}]
    asked.write_text(json.dumps({"round": 0, "trials": trials}))
    config["models"]["lenet"]["grid"]["mean"] += [3.0, 4.0]  # extended while round 0 runs
    configured = cells.study_cells("lenet", config["models"]["lenet"])
    running, broken, waiting = cells.plan_packs(
        configured, 2, "watch", done=lambda p: (tmp_path / p).exists()
    )
    assert cells.study_packs("lenet", config["models"]["lenet"], 2, "watch", lambda p: (tmp_path / p).exists()) == [
        running, broken, waiting]  # fmt: skip
    checkpoint = (
        tmp_path / cells.results_dir("watch") / "lenet/checkpoints/packs/seed~1998" / f"pack~{running.id}.pt"
    )
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"x")
    log = tmp_path / cells.logs_dir("watch") / cells.PACK_LOG.format(**broken.wildcards)
    log.parent.mkdir(parents=True)
    log.write_text(
        "2026-11-23 normsweep.training.runner INFO pack\nTraceback (most recent call last):\nRuntimeError: x\n"
    )
    m = study_status(config, tmp_path)["models"]["lenet"]  # from the files alone
    assert {r["cell"] for r in m["running_cells"]} == {c.result_path("watch") for c in running.cells}
    assert {f["cell"] for f in m["failed_cells"]} == {c.result_path("watch") for c in broken.cells}
    jobs = [Job(31, "PENDING", "Priority", "", "0:00", comment("train_pack", "lenet", 1998, waiting.id), str(tmp_path)),
            Job(30, "RUNNING", "", "node1", "0:09", comment("train_pack", "lenet", 1998, running.id), str(tmp_path))]  # fmt: skip
    m = study_status(config, tmp_path, {j.comment: j for j in jobs})["models"]["lenet"]
    assert {r["cell"] for r in m["running_cells"]} == {c.result_path("watch") for c in running.cells}
    assert {f["cell"] for f in m["failed_cells"]} == {c.result_path("watch") for c in broken.cells}
    assert {q["cell"] for q in m["queued_cells"]} == {c.result_path("watch") for c in waiting.cells}
    assert m["pending"] == 2 and m["trial_cells"] == 2  # the trials: their round has no job
