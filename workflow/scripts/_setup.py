"""Imported first by every rule script: makes the normsweep package importable without an
install (as in a conda env made by --use-conda) and sends logging to the job's log file."""

from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from normsweep.core.signals import note_stop_signals  # noqa: E402

note_stop_signals()  # before torch is imported: a scheduler's early SIGTERM never kills a job half-way


def start_logging(log_files) -> logging.Logger:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for path in log_files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="a"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    atexit.register(log_peak_memory)
    atexit.register(_requeue_after_a_late_stop)
    sys.excepthook = _stopped_or_failed
    return logging.getLogger("normsweep")


_REQUEUED: list[str] = []  # this process's SLURM job, once it requeued it


def _requeue_after_a_late_stop() -> None:
    """A stop signal after training (its results written, its checkpoint kept: the job's
    snakemake reports it failed and deletes them): the job goes back into the queue, so that its
    next try writes the results from that checkpoint at once and no retry is spent."""
    from normsweep.cluster.queue import requeue_self
    from normsweep.core.signals import KEPT

    if KEPT and not _REQUEUED and (job := requeue_self()) is not None:
        _REQUEUED.append(job)
        logging.getLogger("normsweep").warning(
            "SLURM job %s requeued: its next try writes the results from %s", job, ", ".join(KEPT)
        )


def _stopped_or_failed(kind, value, traceback) -> None:
    """A run stopped by the scheduler's signal (after its save) is a line in the log, not a
    traceback, and its SLURM job goes back into the queue to resume there (a time limit or a
    preemption costs no retry); where it cannot, the job ends nonzero and snakemake's retry
    resumes it."""
    from normsweep.cluster.queue import requeue_self
    from normsweep.core.errors import Interrupted

    if not issubclass(kind, Interrupted):
        sys.__excepthook__(kind, value, traceback)
        return
    log = logging.getLogger("normsweep")
    log.warning("%s", value)
    if (job := requeue_self(value.progressed)) is not None:
        _REQUEUED.append(job)
        log.warning("SLURM job %s requeued: it resumes from its checkpoint when it runs again", job)


def log_peak_memory() -> None:
    """The job's peak resident memory, last in its log: what its mem_mb must cover."""
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logging.getLogger("normsweep").info("peak resident memory %.0f MB", peak_mb)


def model_config(smk) -> dict:
    """The model block a training job runs with: its rule's params (what the cell is) plus how
    the job runs (its threads and the torch_device, checkpoint_seconds and switch resources,
    kept out of the params so that changing them retrains nothing)."""
    from normsweep.study.resources import SWITCHES, with_execution

    resources = smk.resources
    switches = {k: getattr(resources, f"torch_{k}") for k in SWITCHES if hasattr(resources, f"torch_{k}")}
    return with_execution(
        smk.params.cell, smk.threads, resources.torch_device, resources.checkpoint_seconds, switches
    )
