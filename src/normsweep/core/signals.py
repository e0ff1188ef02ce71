"""What a scheduler sends before it kills a job, and what a run does with it (torch-free: rule
scripts install :func:`note_stop_signals` before anything else is imported).

SLURM sends SIGTERM (after SIGCONT) to every process of a job's steps at its time limit, at a
preemption and on ``scancel``, and KillWait (or GraceTime) seconds later SIGKILL; with ``sbatch
--signal=TERM@<seconds>`` the same SIGTERM comes that long before the limit. The training
engine saves at its next batch boundary on it (:class:`Stop`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("normsweep")

#: What a scheduler sends before it kills a job: SIGTERM (a time limit, a preemption, scancel),
#: SIGUSR1 or SIGUSR2 (asked for ahead of the limit with ``sbatch --signal``).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


#: Every stop signal this process received (a job that got one is reported failed by its
#: snakemake, which then deletes its outputs: its last checkpoint must stay for the next try).
RECEIVED: list[str] = []

#: Stop signals noted while the job was starting (before the engine's run): the run takes them
#: over and stops at its first batch boundary (a preemption sends one SIGTERM, then SIGKILL).
PENDING: list[str] = []

#: The finished checkpoints kept for the next try because a stop signal came after training
#: (the job then goes back into the queue, as after a stop inside training).
KEPT: list[str] = []


class Stop:
    """The first stop signal received while :meth:`watching` (its name), else None: the run
    saves at its next batch boundary and ends (:class:`normsweep.core.errors.Interrupted`)."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def _received(self, signum: int, frame: Any) -> None:
        RECEIVED.append(signal.Signals(signum).name)
        if self.signal is None:
            self.signal = signal.Signals(signum).name
            log.warning("%s received: saving at the next batch boundary, then stopping", self.signal)

    @contextmanager
    def watching(self, active: bool = True) -> Iterator[Stop]:
        """Catch :data:`STOP_SIGNALS` inside the block (only in the main thread, and only when
        ``active``: a run with no checkpoint has nothing to save and keeps the default)."""
        if not active or threading.current_thread() is not threading.main_thread():
            yield self
            return
        before = {sig: signal.signal(sig, self._received) for sig in STOP_SIGNALS}
        if PENDING and self.signal is None:
            self.signal = PENDING[0]
            log.warning(
                "%s received while starting: saving at the next batch boundary, then stopping", self.signal
            )
        PENDING.clear()
        try:
            yield self
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def note_stop_signals() -> None:
    """For a job's whole life (rule scripts call it first): a stop signal outside the engine's
    run is noted in :data:`RECEIVED`. Before the run (starting, reading data) the run takes it
    over (:data:`PENDING`) and stops at its first batch boundary; after it (writing results)
    the job goes on to write what it has. Inside the run, :class:`Stop` takes over."""

    def note(signum: int, frame: Any) -> None:
        RECEIVED.append(signal.Signals(signum).name)
        PENDING.append(RECEIVED[-1])
        log.warning("%s received outside training: noted (this job will count as failed)", RECEIVED[-1])

    for sig in STOP_SIGNALS:
        signal.signal(sig, note)
