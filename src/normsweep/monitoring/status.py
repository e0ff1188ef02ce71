"""A study's state while snakemake runs: cells done, queued, running, failed, lost, diverged
and still to do (the grid, the references, the refinement's trial cells and its retrained
seeds), the refinement's rounds, the time left, and a progress heatmap.

Reads only (never takes Snakemake's lock, never imports torch). From the study's files, a cell is

- done: its result file is there (``ok`` or ``diverged``);
- failed: no result, and its log ends in an error;
- running: no result, and a checkpoint or a log of it (or of its pack) is there;
- pending: nothing of it yet.

With a scheduler (:mod:`normsweep.cluster.queue`: one ``squeue`` and one ``sacct`` call per
refresh), a cell without a result is what its job (or its pack's job) says: queued (with
SLURM's reason), running (node, elapsed), failed / timeout / out of memory / cancelled (with
the SLURM log), and lost when its files say running but no job holds it.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normsweep.cluster import queue as sched
from normsweep.core import cells as cellnames

EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+): .*?test accuracy ([0-9.na]+)")
ERROR_WORDS = ("Traceback", "Error", "failed", "Exception")
TAIL_LINES = 12


@dataclass
class CellState:
    cell: cellnames.Cell
    state: str  # done, diverged, failed, running, pending
    accuracy: float = math.nan
    last_epoch: int = 0
    epochs: int = 0
    seconds_per_epoch: list[float] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    log: str = ""
    result: str = ""
    origin: str = (
        "configured"  # configured (grid, references), trial (refinement), retrain (best point's seeds)
    )
    job: str = ""  # what SLURM says: "queued (Priority)", "running on node1 for 1:02", "cancelled", ...
    job_id: int = 0
    slurm_log: str = ""


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 16_384))
        return handle.read().decode(errors="replace").splitlines()[-lines:]


def _failed(tail: list[str]) -> bool:
    """The log ends in an error: the last lines after its last epoch line hold one."""
    after = []
    for line in reversed(tail):
        if EPOCH_LINE.search(line) or "resumed from" in line:
            break
        after.append(line)
    return any(word in line for line in after for word in ERROR_WORDS)


#: The scalar fields of a result file as normsweep writes it (json.dumps, indent 2), read
#: without parsing its per-epoch list: 10,000 results in a fraction of a second.
RESULT_FIELD = re.compile(rb'"(status|final_accuracy|epochs_requested)": ("[^"]*"|[^,\n]+)')
#: Results whose epochs are parsed in full, for the measured seconds per epoch.
TIMED_RESULTS = 200


def cell_state(
    cell: cellnames.Cell,
    study: str,
    workdir: Path,
    packs_running: set[cellnames.Cell],
    timed: bool = True,
    packs_failed: Mapping[cellnames.Cell, tuple[str, list[str]]] | None = None,
) -> CellState:
    result_name, log_name = cell.result_path(study), cell.log_path(study)
    state = CellState(cell, "pending", log=log_name, result=result_name)
    log = workdir / log_name
    try:
        with open(workdir / result_name, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = None
    if text is not None:
        try:
            fields = {k.decode(): json.loads(v) for k, v in RESULT_FIELD.findall(text[:4096])}
            if len(fields) < 3 or timed:  # a result to time epochs on (or not our layout): all of it
                raw = json.loads(text)
                fields = {k: raw[k] for k in ("status", "final_accuracy", "epochs_requested")}
                state.seconds_per_epoch = [
                    e["seconds"] for e in raw["epochs"] if e["epoch"] > 0 and e["seconds"]
                ]
            state.state = "diverged" if fields["status"] == "diverged" else "done"
            state.accuracy = math.nan if fields["final_accuracy"] is None else float(fields["final_accuracy"])
            state.epochs = state.last_epoch = int(fields["epochs_requested"])
            return state
        except (ValueError, KeyError, TypeError):
            state.state = "failed"
            state.log_tail = [f"{state.result}: not a complete cell result; delete it and rerun snakemake"]
            return state
    checkpoint = workdir / cellnames.checkpoint_of(result_name)
    if packs_failed and cell in packs_failed:  # its pack's log ends in an error: the traceback is there
        state.state = "failed"
        state.log, state.log_tail = packs_failed[cell]
        return state
    if log.exists():
        state.log_tail = _tail(log)
        for line in state.log_tail:
            match = EPOCH_LINE.search(line)
            if match:
                state.last_epoch, state.epochs = int(match.group(1)), int(match.group(2))
                state.accuracy = float(match.group(3)) if match.group(3) != "nan" else math.nan
        state.state = "failed" if _failed(state.log_tail) else "running"
    elif checkpoint.exists() or cell in packs_running:
        state.state = "running"
    return state


def _round_number(path: Path) -> int:
    return int(path.parent.name.removeprefix("round~"))


def _round_records(folder: Path) -> dict[str, Any]:
    """The refinement's rounds, in their order (round~10 after round~9, not after round~1)."""
    asked = sorted(folder.glob("round~*/asked.json"), key=_round_number)
    told = sorted(folder.glob("round~*/told.json"), key=_round_number)
    trials = sum(len(json.loads(p.read_text())["trials"]) for p in asked)
    last = json.loads(told[-1].read_text()) if told else {}
    return {"rounds_asked": len(asked), "rounds_told": len(told), "trials_asked": trials,
            "finished_trials": last.get("finished")}  # fmt: skip


def _workflow_packs(config: Mapping[str, Any], study: str, model: str, workdir: Path) -> list[cellnames.Pack]:
    """The packs of the configured cells still to do, as the workflow plans them."""
    size = config["cluster"].get("pack", 1)
    return cellnames.study_packs(
        model, config["models"][model], size, study, done=lambda p: (workdir / p).exists()
    )


def _pack_states(
    config: Mapping[str, Any], study: str, model: str, workdir: Path
) -> tuple[set[cellnames.Cell], dict[cellnames.Cell, tuple[str, list[str]]]]:
    """The cells still to do whose pack is running (it saved an epoch) and those whose pack
    failed (its log ends in an error: the members' own logs have no traceback). Packs are
    planned only when a pack has left a checkpoint or a log (10,000 cells stay fast)."""
    checkpoints = {
        p.name
        for p in (workdir / cellnames.results_dir(study) / model / "checkpoints" / "packs").glob("*/*.pt")
    }
    logs = {p.name for p in (workdir / cellnames.logs_dir(study) / model / "packs").glob("*/*.log")}
    running: set[cellnames.Cell] = set()
    failed: dict[cellnames.Cell, tuple[str, list[str]]] = {}
    if not checkpoints and not logs:
        return running, failed
    for pack in _workflow_packs(config, study, model, workdir):
        log_name = f"{cellnames.logs_dir(study)}/{cellnames.PACK_LOG.format(**pack.wildcards)}"
        if f"pack~{pack.id}.log" in logs and _failed(tail := _tail(workdir / log_name)):
            failed.update((c, (log_name, tail)) for c in pack.cells)
        elif f"pack~{pack.id}.pt" in checkpoints:
            running.update(pack.cells)
    return running, failed


def refinement_cells(
    model: str, block: Mapping[str, Any], study: str, workdir: Path
) -> dict[cellnames.Cell, str]:
    """The cells the refinement trains: each asked round's trial cells and, once the best point
    is known, its retrained seeds (cell -> "trial" or "retrain")."""
    folder = workdir / cellnames.results_dir(study) / model / "optuna"
    out: dict[cellnames.Cell, str] = {}
    if not block.get("optuna") or not folder.is_dir():
        return out
    for asked in sorted(folder.glob("round~*/asked.json"), key=_round_number):
        for t in json.loads(asked.read_text())["trials"]:
            if {"mean", "std", "seed"} <= set(t):
                out.setdefault(cellnames.Cell(model, t["mean"], t["std"], int(t["seed"])), "trial")
    best = folder / "best.json"
    if best.exists():
        point = json.loads(best.read_text())
        for seed in block["optuna"]["retrain_seeds"]:
            out.setdefault(
                cellnames.Cell(model, point["mean_label"], point["std_label"], int(seed)), "retrain"
            )
    return out


def _cell_jobs(
    model: str,
    todo: list[cellnames.Cell],
    config: Mapping[str, Any],
    study: str,
    workdir: Path,
    jobs: Mapping[str, sched.Job],
) -> dict[cellnames.Cell, sched.Job]:
    """Each cell's newest job: its own (train_cell), its pack's (train_pack: packs of the
    configured cells still to do, as the workflow plans them) or its refinement round's pack
    (train_round_pack), matched by the job's comment."""
    out: dict[cellnames.Cell, sched.Job] = {}
    for cell in todo:
        job = jobs.get(sched.comment("train_cell", model, cell.mean, cell.std, cell.seed))
        if job is not None:
            out[cell] = job
    pack_prefix = f"rule_train_pack_wildcards_{model}_"
    pack_jobs = {c.rsplit("_", 1)[-1]: j for c, j in jobs.items() if c.startswith(pack_prefix)}
    if pack_jobs:
        for pack in _workflow_packs(config, study, model, workdir):
            job = pack_jobs.get(pack.id)
            for cell in pack.cells if job is not None else ():
                if cell not in out or out[cell].job_id < job.job_id:
                    out[cell] = job
    round_prefix = f"rule_train_round_pack_wildcards_{model}_"
    folder = workdir / cellnames.results_dir(study) / model / "optuna"
    for name, job in jobs.items():
        if (
            name.startswith(round_prefix)
            and (asked := folder / f"round~{name[len(round_prefix) :]}/asked.json").exists()
        ):
            for t in json.loads(asked.read_text())["trials"]:
                if not {"mean", "std", "seed"} <= set(t):
                    continue
                cell = cellnames.Cell(model, t["mean"], t["std"], int(t["seed"]))
                if cell not in out or out[cell].job_id < job.job_id:
                    out[cell] = job
    return out


def job_log(state: CellState, job: sched.Job, study: str) -> str:
    """The log a job writes as it starts: the cell's own, or its pack's (a pack's members write
    theirs only at an epoch's end, an evaluation pack's never), or its refinement round's."""
    rule, _, wildcards = job.comment.partition("_wildcards_")
    if rule == "rule_train_pack":
        model, seed, pack = wildcards.rsplit("_", 2)
        return f"{cellnames.logs_dir(study)}/{cellnames.PACK_LOG.format(model=model, seed=seed, pack=pack)}"
    if rule == "rule_train_round_pack":
        model, number = wildcards.rsplit("_", 1)
        return f"{cellnames.logs_dir(study)}/{model}/optuna/round~{number}.pack.log"
    return state.log


def _apply_job(state: CellState, job: sched.Job | None, workdir: Path, study: str) -> None:
    """What the scheduler says of a cell without a result; a pack's members carry its job's fate."""
    if state.state in ("done", "diverged"):
        return
    log = workdir / (job_log(state, job, study) if job is not None else state.log)
    if job is not None and not job.active and not (log.exists() and log.stat().st_mtime >= job.start - 1):
        job = None  # an ended job that did not write this study's log: another study's, same folder
    if job is not None and job.active:
        state.state = "queued" if job.queued else "running"
    elif job is not None and job.state in sched.ENDED:
        state.state = "failed"
        state.log_tail = state.log_tail or [f"SLURM: {sched.ENDED[job.state]}"]
    elif state.state == "running":  # its files say running, and no job holds it
        state.state = "lost"
    if job is not None:
        state.job, state.job_id, state.slurm_log = sched.describe(job), job.job_id, job.log(workdir)


def _cell_lists(states: list[CellState], epochs: int) -> dict[str, list[dict[str, Any]]]:
    """The running, queued, failed and lost cells, with what their files and jobs say."""
    return {
        "running_cells": [
            {
                "cell": s.result,
                "origin": s.origin,
                "epoch": s.last_epoch,
                "of": s.epochs or epochs,
                "accuracy": None if math.isnan(s.accuracy) else s.accuracy,
                "job": s.job,
                "job_id": s.job_id,
            }  # fmt: skip
            for s in states
            if s.state == "running"
        ],
        "queued_cells": [
            {"cell": s.result, "origin": s.origin, "job": s.job, "job_id": s.job_id}
            for s in states
            if s.state == "queued"
        ],
        "failed_cells": [
            {
                "cell": s.result,
                "log": s.log,
                "tail": s.log_tail,
                "job": s.job,
                "job_id": s.job_id,
                "slurm_log": s.slurm_log,
            }  # fmt: skip
            for s in states
            if s.state == "failed"
        ],
        "lost_cells": [{"cell": s.result, "log": s.log} for s in states if s.state == "lost"],
    }


def study_status(
    config: Mapping[str, Any], workdir: str | Path = ".", jobs: Mapping[str, sched.Job] | None = None
) -> dict[str, Any]:
    """Everything the status prints, as plain data (``--json``); ``jobs`` (from
    :func:`normsweep.cluster.queue.query_jobs`) joins what the scheduler says of each cell."""
    workdir = Path(workdir)
    study = config["study"]
    out: dict[str, Any] = {"study": study, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {},
                           "scheduler": jobs is not None}  # fmt: skip
    for model, block in config["models"].items():
        origin = {c: "configured" for c in cellnames.study_cells(model, block)}
        for cell, kind in refinement_cells(model, block, study, workdir).items():
            origin.setdefault(cell, kind)
        study_cells = list(origin)
        packs_running, packs_failed = _pack_states(config, study, model, workdir)
        states = [
            cell_state(c, study, workdir, packs_running, timed=i < TIMED_RESULTS, packs_failed=packs_failed)
            for i, c in enumerate(study_cells)
        ]
        for s in states:
            s.origin = origin[s.cell]
        finishing = 0  # cells with a result whose job is still in the queue (ending: a few seconds)
        if jobs is not None:
            todo = [s.cell for s in states if s.state not in ("done", "diverged")]
            of_cell = _cell_jobs(model, todo, config, study, workdir, jobs)
            for s in states:
                _apply_job(s, of_cell.get(s.cell), workdir, study)
                if s.state in ("done", "diverged"):
                    job = jobs.get(sched.comment("train_cell", model, s.cell.mean, s.cell.std, s.cell.seed))
                    finishing += bool(job and job.active and not job.queued)
        counts = Counter(s.state for s in states)
        seconds = [x for s in states for x in s.seconds_per_epoch]
        epochs = max(block["training"]["epochs"], 1)
        running = [s for s in states if s.state == "running"]
        waiting = [s for s in states if s.state in ("pending", "queued", "lost")]
        per_epoch = statistics.median(seconds) if seconds else None
        left_epochs = sum(max(epochs - s.last_epoch, 0) for s in running) + epochs * len(waiting)
        at_once = max(len(running), 1)
        optuna = None
        if block.get("optuna"):
            optuna = {
                **_round_records(workdir / cellnames.results_dir(study) / model / "optuna"),
                "rounds": len(cellnames.rounds(block["optuna"]["n_trials"], block["optuna"]["batch"])),
                "n_trials": block["optuna"]["n_trials"],
            }
            # rounds not asked yet, each its batch of cells at once, then the best point's seeds
            batch = block["optuna"]["batch"]
            later = max(optuna["rounds"] - optuna["rounds_asked"], 0) * math.ceil(batch / at_once)
            if not any(o == "retrain" for o in origin.values()):
                later += math.ceil(len(block["optuna"]["retrain_seeds"]) / at_once)
            left_epochs += later * epochs * at_once  # divided by at_once below
        entry: dict[str, Any] = {
            "cells": len(states),
            **{
                k: counts.get(k, 0)
                for k in ("done", "queued", "running", "failed", "lost", "diverged", "pending")
            },
            "finishing": finishing,
            "trial_cells": sum(o == "trial" for o in origin.values()),
            "retrain_cells": sum(o == "retrain" for o in origin.values()),
            "seconds_per_epoch": per_epoch,
            "epochs_left": left_epochs,
            "running_at_once": len(running),
            "seconds_left": None if per_epoch is None else left_epochs * per_epoch / at_once,
            **_cell_lists(states, epochs),
        }
        if optuna:
            entry["optuna"] = optuna
        entry["_states"] = states
        out["models"][model] = entry
    out["started"] = any(
        m["done"] + m["queued"] + m["running"] + m["failed"] + m["lost"] + m["diverged"]
        for m in out["models"].values()
    )
    return out
