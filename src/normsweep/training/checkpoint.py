"""Checkpoint I/O for every kind of run: atomic saves, the fingerprint comparison that decides
whether a checkpoint may be resumed, random states, and the position inside an epoch.

A primitive: it imports only :mod:`normsweep.training.tensorfile`. What a checkpoint holds is the
engine's business (:mod:`normsweep.training.engine`); how it is written, read and trusted is this
module's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from normsweep.core import files
from normsweep.core.signals import KEPT, RECEIVED
from normsweep.training import tensorfile

log = logging.getLogger("normsweep.training.checkpoint")


def save_atomic(path: Path, state: dict) -> None:
    """torch.save to this writer's temporary file beside ``path``, flushed to disk, then
    renamed: never half a checkpoint, nor an empty one after a node crash."""
    with files.writing(path) as tmp:
        torch.save(state, tmp)


def rng_state(shuffle: torch.Generator) -> dict:
    """The random state a resumed run needs: the batch order's and torch's (CPU and CUDA)."""
    return {
        "shuffle_rng": shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict, shuffle: torch.Generator) -> None:
    """Undo :func:`rng_state`. Every state goes back to the CPU first: a checkpoint loaded with
    ``map_location`` on a GPU has moved them there, and torch's setters take CPU byte tensors."""
    shuffle.set_state(state["shuffle_rng"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    present = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for index, saved in present_generators(state.get("cuda_rng"), present):
        torch.cuda.set_rng_state(saved.cpu(), index)


def present_generators(saved: list[torch.Tensor] | None, present: int) -> list[tuple[int, torch.Tensor]]:
    """The saved CUDA generator states of the devices this job has (a checkpoint saved with two
    visible GPUs resumes with one: the states of absent devices are left aside)."""
    return list(enumerate(saved or []))[:present]


def device_rng(device: torch.device) -> dict[str, torch.Tensor | None]:
    """torch's random state that a step on ``device`` draws from: the CPU generator and, on a
    GPU, that GPU's generator (dropout on CUDA draws from the latter)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_device_rng(state: dict[str, torch.Tensor | None], device: torch.device) -> None:
    cpu, cuda = state["cpu"], state.get("cuda")
    assert cpu is not None
    torch.set_rng_state(cpu.cpu())
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), device)


def stale_because(saved: Any, now: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """The keys in which a checkpoint's fingerprint differs from the run's (all of them when
    the checkpoint has none: made by an older version). A pack's fingerprint is a list, one
    per member: the keys that differ for any member."""
    if saved is None:
        return ["(no fingerprint: an older version's checkpoint)"]
    if isinstance(now, list):
        if not isinstance(saved, list) or len(saved) != len(now):
            return ["(the members)"]
        return sorted({key for old, new in zip(saved, now, strict=True) for key in stale_because(old, new)})
    keys = sorted(set(saved) | set(now))
    changed = [k for k in keys if saved.get(k) != now.get(k)]
    if "training" in changed:  # name the knob
        a, b = saved.get("training") or {}, now.get("training") or {}
        changed.remove("training")
        changed += [f"training.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return changed


def usable_checkpoint(
    path: Path | None,
    now: dict[str, Any] | list[dict[str, Any]],
    device: torch.device,
    what: str,
    validate: Callable[[dict], None] | None = None,
) -> dict | None:
    """The checkpoint's state when it was made by this run's settings; else None, logged with
    the settings that changed (the stale file is left for the next save to replace).
    ``validate(state)`` may refuse a checkpoint outright (it raises) before the comparison."""
    if path is None or not path.exists():
        return None
    try:
        state = tensorfile.load(path, what, map_location=device)
    except tensorfile.DamagedFileError as error:  # cut short by a crash: the run starts afresh
        files.set_aside(path, str(error.__cause__ or error))
        return None
    if validate is not None:
        validate(state)
    changed = stale_because(state.get("fingerprint"), now)
    if changed:
        log.warning(
            "%s %s was made with other settings (%s changed): starting afresh", what, path, ", ".join(changed)
        )
        return None
    return state


@dataclass
class Position:
    """Where a run is inside an epoch: batches done, every member's summed training loss, and
    the shuffle generator's state at the epoch's start (which gives the epoch's batch order)."""

    batch: int
    loss_sum: torch.Tensor  # one float64 value per member (on the device while training)
    shuffle_state: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {"batch": self.batch, "loss_sum": self.loss_sum.tolist(), "shuffle_state": self.shuffle_state}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Position | None:
        if not raw:
            return None
        loss = torch.tensor(raw["loss_sum"], dtype=torch.float64).reshape(-1)
        return cls(int(raw["batch"]), loss, raw["shuffle_state"].cpu())


class Every:
    """Due every ``minutes`` (0: after every batch; None: never) since the last time it was due."""

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else 60.0 * minutes
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.seconds is None:
            return False
        if self.seconds > 0 and time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def drop_after_result(path: Path | None) -> None:
    """Remove a run's checkpoint once its results are written, unless this process got a stop
    signal: its snakemake then reports the job failed and deletes the results, and the next
    try writes them again from this (finished) checkpoint instead of training anew."""
    if path is None:
        return
    if RECEIVED:
        log.warning("kept %s: a stop signal (%s) came, so this job counts as failed and its next "
                    "try writes its results from it", path, ", ".join(RECEIVED))  # fmt: skip
        KEPT.append(str(path))
        return
    path.unlink(missing_ok=True)
