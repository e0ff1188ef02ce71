"""Where a run stands, as its checkpoint keeps it: every member's status and epoch records, the
plateau rule, the last finished epoch and the tries a scheduler's signal stopped."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from normsweep.core.results import STATUS_OK, EpochRecord
from normsweep.training.plateau import Plateau

#: Told of every epoch record (member, record): the job's log lines.
OnEpoch = Callable[[int, EpochRecord], None]


@dataclass
class Progress:
    """Every member's status and epoch records, the plateau rule and the last finished epoch."""

    plateau: Plateau
    histories: list[list[EpochRecord]]
    status: list[str]
    epoch: int = 0
    on_epoch: OnEpoch | None = None  # told of every record
    stops: list[str] = dataclasses.field(default_factory=list)  # the tries a signal stopped, in words

    @classmethod
    def fresh(cls, k: int, lr: float, on_epoch: OnEpoch | None = None) -> Progress:
        return cls(Plateau(lr=[float(lr)] * k), [[] for _ in range(k)], [STATUS_OK] * k, on_epoch=on_epoch)

    def record(self, member: int, entry: EpochRecord) -> None:
        self.histories[member].append(entry)
        if self.on_epoch is not None:
            self.on_epoch(member, entry)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "status": self.status, "plateau": self.plateau.state_dict(),
                "histories": [[vars(r) for r in h] for h in self.histories], "stops": self.stops}  # fmt: skip

    def load(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.status = list(state["status"])
        self.plateau.load_state_dict(state["plateau"])
        self.histories = [[EpochRecord(**r) for r in h] for h in state["histories"]]
        self.stops = list(state.get("stops", []))


def stopped_try(signal_name: str, where: str) -> str:
    """One line on a try a signal stopped: where, when, on which host and SLURM job."""
    job = os.environ.get("SLURM_JOB_ID")
    on = f" on {socket.gethostname()}" + (f", SLURM job {job}" if job else "")
    return f"{signal_name} {where}, {time.strftime('%Y-%m-%d %H:%M:%S')}{on}"
