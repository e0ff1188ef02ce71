"""Optuna refinement of the grid: a study in a journal file shared by several workers.

- Storage: Optuna's JournalStorage with its file backend (safe for several processes on a
  shared file system, unlike SQLite over NFS).
- Warm start: finished grid cells inside the search space become completed trials, each
  tagged with its cell so that adding them again adds nothing.
- Workers: each asks for trials until the study holds the requested number of finished
  trials. A trial's number is handed out by the storage, so a worker that finds itself
  past the cap gives its trial back (state FAIL, marked ``surplus``) instead of running it:
  the count of completed trials is exact however many workers race.
- Dead workers: every running trial carries a heartbeat (its worker refreshes it while it
  trains). A trial whose heartbeat is older than the grace period is marked failed and its
  parameters are queued again, so a killed worker loses no finished trial and leaves no
  trial stuck; the next worker (or a rerun) completes it.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from .results import CellResult

CELL_ATTR = "cell"  # "mean|std|seed" of the cell a trial stands for
HEARTBEAT_ATTR = "heartbeat"  # unix time of the worker's last sign of life
WORKER_ATTR = "worker"
SURPLUS_ATTR = "surplus"
RETRY_OF_ATTR = "retry_of"


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the mean and (log-scale) std; with ``channels`` = 3, one mean and one std
    per RGB channel (6 parameters) within the same ranges."""

    mean_low: float
    mean_high: float
    std_low: float
    std_high: float
    channels: int = 1

    def __post_init__(self) -> None:
        if not self.mean_low < self.mean_high:
            raise ValueError(f"mean range [{self.mean_low}, {self.mean_high}]: low must be below high")
        if not 0 < self.std_low < self.std_high:
            raise ValueError(
                f"std range [{self.std_low}, {self.std_high}]: the std is searched on a log scale, "
                f"so 0 < low < high"
            )

    def names(self, axis: str) -> list[str]:
        return [axis] if self.channels == 1 else [f"{axis}_{c}" for c in "rgb"[: self.channels]]

    @property
    def distributions(self) -> dict[str, FloatDistribution]:
        out = {n: FloatDistribution(self.mean_low, self.mean_high) for n in self.names("mean")}
        out.update({n: FloatDistribution(self.std_low, self.std_high, log=True) for n in self.names("std")})
        return out

    def contains(self, mean: float, std: float) -> bool:
        return self.mean_low <= mean <= self.mean_high and self.std_low <= std <= self.std_high

    def params(self, mean: float, std: float) -> dict[str, float]:
        """The trial parameters of an equal-channel point (a grid cell)."""
        return {**{n: mean for n in self.names("mean")}, **{n: std for n in self.names("std")}}

    def point(self, params: dict[str, float]) -> tuple[list[float], list[float]]:
        """Per-channel (mean, std) lists of a trial's parameters."""
        return [params[n] for n in self.names("mean")], [params[n] for n in self.names("std")]


def make_sampler(name: str = "tpe", seed: int | None = None) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # constant_liar: parallel workers do not all pick the same point
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}: use tpe, gp or random")


def open_study(path: str | Path, name: str, sampler: str = "tpe", seed: int | None = None) -> optuna.Study:
    """The study in its journal file, created on first use (every worker calls this)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler(sampler, seed),
    )


def cell_key(mean_label: str, std_label: str, seed: int) -> str:
    return f"{mean_label}|{std_label}|{seed}"


def warm_start(study: optuna.Study, results: Iterable[CellResult], space: SearchSpace) -> int:
    """Add finished cells inside the space as completed trials; returns how many were new."""
    known = {t.user_attrs.get(CELL_ATTR) for t in study.get_trials(deepcopy=False)}
    trials = []
    for r in results:
        if r.mean is None or len(set(r.mean)) != 1 or len(set(r.std or [])) != 1:
            continue  # no normalization, or per-channel values: not a point of this space
        if not math.isfinite(r.final_accuracy) or not space.contains(r.mean[0], r.std[0]):
            continue
        key = cell_key(r.mean_label, r.std_label, r.seed)
        if key in known:
            continue
        known.add(key)
        trials.append(
            optuna.trial.create_trial(
                params=space.params(r.mean[0], r.std[0]),
                distributions=space.distributions,
                value=r.final_accuracy,
                user_attrs={CELL_ATTR: key, "source": "grid"},
            )
        )
    study.add_trials(trials)
    return len(trials)


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def finished(study: optuna.Study) -> int:
    """Trials that count towards the requested number: completed or pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def recover_stale(study: optuna.Study, grace_seconds: float, now: float | None = None) -> int:
    """Fail running trials whose worker went silent, and queue their parameters again."""
    now = time.time() if now is None else now
    storage, recovered = study._storage, 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(
            HEARTBEAT_ATTR, trial.datetime_start.timestamp() if trial.datetime_start else now
        )
        if now - beat <= grace_seconds:
            continue
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:  # finished meanwhile by a slow but living worker
            continue
        study.enqueue_trial(
            dict(trial.params), user_attrs={RETRY_OF_ATTR: trial.number}, skip_if_exists=False
        )
        recovered += 1
    return recovered


class Heartbeat:
    """Refreshes a trial's heartbeat from a background thread while its worker trains."""

    def __init__(self, trial: optuna.Trial, interval: float) -> None:
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(
    study: optuna.Study,
    total: int,
    evaluate: Callable[[optuna.Trial], float],
    space: SearchSpace,
    grace_seconds: float = 600.0,
    heartbeat_seconds: float = 30.0,
) -> int:
    """Run trials until the study holds ``total`` finished trials; returns how many this
    worker finished. ``evaluate(trial)`` trains the cell at ``trial.params`` and returns its
    accuracy; it may report per-epoch accuracy and raise ``optuna.TrialPruned``."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    done = 0
    while True:
        recover_stale(study, grace_seconds)
        if finished(study) >= total:
            return done
        trial = study.ask(space.distributions)
        trial.set_user_attr(WORKER_ATTR, worker)
        # the storage numbers trials in order: those before this one that completed or are
        # still running will fill the cap first
        ahead = [
            t
            for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
            if t.number < trial.number
        ]
        if len(ahead) >= total:
            trial.set_user_attr(SURPLUS_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            return done
        try:
            with Heartbeat(trial, heartbeat_seconds):
                value = evaluate(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            done += 1
            continue
        study.tell(
            trial,
            value if math.isfinite(value) else None,
            state=TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL,
        )
        done += math.isfinite(value)


def box_around_best(
    results: Iterable[CellResult], grid_means: list[float], grid_stds: list[float], space: SearchSpace
) -> SearchSpace:
    """The search space narrowed to the grid neighbours of the best grid cell (mean over
    seeds): one grid step on each side, within ``space``."""
    by_cell: dict[tuple[float, float], list[float]] = {}
    for r in results:
        if r.mean is not None and len(set(r.mean)) == 1 and math.isfinite(r.final_accuracy):
            by_cell.setdefault((r.mean[0], r.std[0]), []).append(r.final_accuracy)
    on_grid = {
        k: sum(v) / len(v)
        for k, v in by_cell.items()
        if any(math.isclose(k[0], m, rel_tol=1e-5, abs_tol=1e-9) for m in grid_means)
        and any(math.isclose(k[1], s, rel_tol=1e-5) for s in grid_stds)
    }
    if not on_grid:
        return space
    best_mean, best_std = max(on_grid, key=on_grid.get)

    def neighbours(values: list[float], x: float) -> tuple[float, float]:
        values = sorted(values)
        i = min(range(len(values)), key=lambda k: abs(values[k] - x))
        return values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)]

    m_low, m_high = neighbours(grid_means, best_mean)
    s_low, s_high = neighbours(grid_stds, best_std)
    return SearchSpace(
        max(m_low, space.mean_low),
        min(m_high, space.mean_high),
        max(s_low, space.std_low),
        min(s_high, space.std_high),
        space.channels,
    )
