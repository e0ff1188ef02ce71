"""The learning-rate schedule and the epoch records of every member of a run.

:class:`Plateau` is ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max")`` with torch's
defaults, written over lists so that K members keep K rates and K states (torch.optim holds one
rate per parameter group); for one member it gives torch's rates exactly (tests/test_engine.py).
:func:`epoch_message` is a member's log line for one epoch, which ``scripts/status.py`` reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from normsweep.core.results import EpochRecord


@dataclass
class Plateau:
    """ReduceLROnPlateau(mode="max", threshold_mode="rel") with torch's defaults, one state per member."""

    lr: list[float]
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8
    best: list[float] = field(default_factory=list)
    num_bad_epochs: list[int] = field(default_factory=list)
    cooldown_counter: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        k = len(self.lr)
        self.best = self.best or [-math.inf] * k
        self.num_bad_epochs = self.num_bad_epochs or [0] * k
        self.cooldown_counter = self.cooldown_counter or [0] * k

    def step(self, metrics: Sequence[float], members: Sequence[int] | None = None) -> None:
        """One epoch's test accuracies of ``members`` (indices; default all)."""
        for i, current in zip(members if members is not None else range(len(self.lr)), metrics, strict=True):
            current = float(current)
            if current > self.best[i] * (1.0 + self.threshold):  # mode max, threshold_mode rel
                self.best[i] = current
                self.num_bad_epochs[i] = 0
            else:
                self.num_bad_epochs[i] += 1
            if self.cooldown_counter[i] > 0:
                self.cooldown_counter[i] -= 1
                self.num_bad_epochs[i] = 0
            if self.num_bad_epochs[i] > self.patience:
                new_lr = max(self.lr[i] * self.factor, self.min_lr)
                if self.lr[i] - new_lr > self.eps:
                    self.lr[i] = new_lr
                self.cooldown_counter[i] = self.cooldown
                self.num_bad_epochs[i] = 0

    def state_dict(self) -> dict:
        return {
            "lr": list(self.lr),
            "best": list(self.best),
            "num_bad_epochs": list(self.num_bad_epochs),
            "cooldown_counter": list(self.cooldown_counter),
        }

    def load_state_dict(self, state: dict) -> None:
        self.lr = [float(v) for v in state["lr"]]
        self.best = [float(v) for v in state["best"]]
        self.num_bad_epochs = [int(v) for v in state["num_bad_epochs"]]
        self.cooldown_counter = [int(v) for v in state["cooldown_counter"]]


def epoch_message(record: EpochRecord, epochs: int) -> str:
    """A cell's log line for one epoch (scripts/status.py reads it back): the same for a cell
    trained alone and for a member of a pack."""
    if not math.isfinite(record.train_loss):
        return f"epoch {record.epoch}/{epochs}: training loss is {record.train_loss}: diverged, stopping"
    return (
        f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f}, test loss {record.test_loss:.4f}, "
        f"test accuracy {record.test_accuracy:.4f}, lr {record.lr:.3g}, {record.seconds:.1f} s"
    )
