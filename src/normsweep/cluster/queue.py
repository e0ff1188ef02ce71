"""What SLURM says about a study's jobs, for the status: one ``squeue`` call for the jobs in
the queue and one ``sacct`` call for the jobs that ended, per refresh (never one per cell).

The Snakemake SLURM executor names each job's rule and wildcards in its comment
(``rule_train_cell_wildcards_lenet_0_0.3_1998``) and writes its log to
``.snakemake/slurm_logs/rule_<rule>/<wildcards joined by _>/<job id>.log``; a job is matched
to a cell (or a pack, or a refinement round's pack) by that comment. No torch, no lock.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Ended states that mean the cell will not finish unless snakemake is run again.
ENDED = {
    "FAILED": "failed",
    "TIMEOUT": "timeout",
    "OUT_OF_MEMORY": "out of memory",
    "CANCELLED": "cancelled",
    "NODE_FAIL": "node failure",
    "PREEMPTED": "preempted",
    "BOOT_FAIL": "failed",
    "DEADLINE": "timeout",
}
#: Every other ended state SLURM documents (squeue(1), JOB STATE CODES).
FINISHED = {"COMPLETED", "REVOKED"}
#: States of a job SLURM still holds that has not started (or waits to start again).
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
           "SUSPENDED"}  # fmt: skip
QUEUE_FIELDS = "%i|%T|%r|%N|%M|%Z|%k"  # id, state, reason, nodes, elapsed, working directory, comment
SACCT_FIELDS = ("JobID", "State", "NodeList", "Elapsed", "Start", "WorkDir%400", "Comment%400")


@dataclass(frozen=True)
class Job:
    job_id: int
    state: str  # PENDING, RUNNING, ..., COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY
    reason: str  # why it waits (Priority, Resources, ...); "" when it runs or ended
    node: str
    elapsed: str
    comment: str
    workdir: str = ""
    start: float = 0.0  # when it started (seconds since the epoch; 0: not started or unknown)

    @property
    def queued(self) -> bool:
        return self.state in WAITING

    @property
    def active(self) -> bool:
        """SLURM still holds the job: any state but an ended one, so WAITING and the states of a
        job on its node (RUNNING, COMPLETING, STOPPED, SIGNALING, STAGE_OUT, RESIZING); a state
        unknown to this version counts as held, so that its cell is never called lost and run twice."""
        return self.state not in ENDED and self.state not in FINISHED

    def log(self, workdir: str | Path = ".") -> str:
        """The SLURM log the executor wrote for this job."""
        rule, _, wildcards = self.comment.partition("_wildcards_")
        return str(Path(workdir) / ".snakemake" / "slurm_logs" / rule / wildcards / f"{self.job_id}.log")


def comment(rule: str, *wildcards: object) -> str:
    """The comment the SLURM executor gives a job of ``rule`` with these wildcard values (in the
    order of the rule's output pattern)."""
    return f"rule_{rule}_wildcards_" + "_".join(str(w) for w in wildcards)


def _run(command: list[str], timeout: float = 60) -> str | None:
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=os.environ)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout if run.returncode == 0 else None


def scontrol_fields(line: str) -> dict[str, str]:
    """The ``Key=value`` fields of one line of ``scontrol show <job|partition|node> -o``."""
    return dict(re.findall(r"(\w+)=(\S*)", line))


def _seconds(text: str) -> float:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # Unknown, None
        return 0.0


def query_jobs(workdir: str | Path = ".", since: str = "now-7days") -> dict[str, Job] | None:
    """The user's jobs run from ``workdir`` (the study's folder, where snakemake submits them),
    by comment, the newest job of each: in the queue (squeue) or ended since ``since`` (sacct;
    skipped when accounting does not answer: its Comment needs AccountingStoreFlags=job_comment).
    None without a scheduler."""
    if shutil.which("squeue") is None:
        return None
    queue = _run(["squeue", "--me", "-h", "-o", QUEUE_FIELDS])
    if queue is None:
        return None
    jobs: dict[str, Job] = {}
    here = os.path.realpath(workdir)
    ended = None
    if shutil.which("sacct"):  # root sees every user's jobs: ask for this user's
        user = ["-u", getpass.getuser()]
        ended = _run(["sacct", "-X", "-n", "-P", *user, "-S", since, "-o", ",".join(SACCT_FIELDS)])
    for line in (ended or "").splitlines():
        parts = line.split("|")
        if len(parts) < 7 or not parts[0].isdigit() or not _same_dir(parts[5], here):
            continue
        job = Job(int(parts[0]), parts[1].split()[0], "", parts[2], parts[3], "|".join(parts[6:]), parts[5],
                  _seconds(parts[4]))  # fmt: skip
        _keep_newest(jobs, job)
    for line in queue.splitlines():
        parts = line.split("|")
        if len(parts) < 7 or not parts[0].isdigit() or not _same_dir(parts[5], here):
            continue
        reason = "" if parts[2] in ("None", "(null)") else parts[2]
        job = Job(int(parts[0]), parts[1], reason, parts[3], parts[4], "|".join(parts[6:]), parts[5])
        ended = jobs.get(job.comment)
        if (job.state == "COMPLETING" and ended and ended.job_id == job.job_id and ended.state in ENDED
                and ended.state != "PREEMPTED"):  # fmt: skip
            continue  # cancelled or failed, its node still cleaning up: what accounting says
        # (a preempted job still in the queue is being requeued: it is held, never lost)
        _keep_newest(jobs, job, prefer=True)
    return jobs


def _same_dir(path: str, here: str) -> bool:
    return bool(path) and os.path.realpath(path) == here


def _keep_newest(jobs: dict[str, Job], job: Job, prefer: bool = False) -> None:
    if not job.comment.startswith("rule_"):
        return
    old = jobs.get(job.comment)
    if old is None or job.job_id > old.job_id or (prefer and job.job_id == old.job_id):
        jobs[job.comment] = job


def describe(job: Job) -> str:
    if job.queued:
        return f"queued ({job.reason or job.state})" if job.reason else "queued"
    if job.active:
        held = "" if job.state in ("RUNNING", "COMPLETING") else f" ({job.state})"
        return f"running on {job.node or '?'} for {job.elapsed}{held}"
    return ENDED.get(job.state, job.state.lower())


def requeue_self(progressed: bool = True) -> str | None:
    """Put the SLURM job this process runs in back into the queue (``scontrol requeue``), as
    submitit does at a time limit: it runs again under the same job id, which its snakemake
    keeps waiting for, and resumes from its checkpoint, with no retry spent. The job id when
    SLURM took it; None outside SLURM or where the job may not be requeued (``--no-requeue``,
    ``JobRequeue=0``), or cancelled by its user: then the job ends failed and snakemake's retry
    (if any) resumes it. A try that did not progress is requeued only when preempted: a time
    limit's warning at every start would loop, while a job that ends within its preemption's
    GraceTime (still RUNNING, its PreemptTime set) is not requeued by SLURM, only ended."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or shutil.which("scontrol") is None:
        return None
    shown = scontrol_fields(_run(["scontrol", "show", "job", "-o", job]) or "")
    if shown.get("JobState") not in REQUEUE_FROM:  # scancel (CANCELLED) ends the job, as its user asked
        return None
    if not progressed and shown.get("PreemptTime", "None") in ("None", "Unknown", ""):
        return None
    return job if _run(["scontrol", "requeue", job]) is not None else None


#: The states of a job told to stop that it requeues itself from: the early warning of --signal
#: (still RUNNING) and its time limit (TIMEOUT); a preempted job SLURM requeues (or cancels) itself.
REQUEUE_FROM = {"RUNNING", "TIMEOUT"}


def submit_cap(user: str | None = None) -> int | None:
    """The most jobs this user may have queued or running at once, from the accounting
    database (``sacctmgr show assoc``: the smallest MaxSubmitJobs, MaxJobs or GrpSubmitJobs of
    the user's associations); None where none is set or sacctmgr does not answer."""
    if shutil.which("sacctmgr") is None:
        return None
    user = user or getpass.getuser()
    shown = _run(
        ["sacctmgr", "-n", "-P", "show", "assoc", f"user={user}", "format=MaxSubmit,MaxJobs,GrpSubmit"]
    )
    caps = [int(v) for line in (shown or "").splitlines() for v in line.split("|") if v.strip().isdigit()]
    return min(caps) if caps else None
