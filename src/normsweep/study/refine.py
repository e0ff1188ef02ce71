"""Optuna refinement of the grid, in rounds of ordinary cell jobs.

- Storage: Optuna's JournalStorage in a local file, opened only by the process that runs
  snakemake (its local rules): one writer, no shared-file-system races.
- Warm start: finished grid cells inside the search space become completed trials, each
  tagged with its cell so that adding them again adds nothing.
- Rounds: a round asks the study for a batch of trials (:func:`ask_round`), the trials train as
  ordinary cells (jobs like the grid's, with a cell's time limit, resumed from their
  checkpoints when killed), and the round tells the study their accuracies (:func:`tell_round`).
  Asking and telling are idempotent per trial, so a round done again never adds or counts a
  trial twice, and the study ends with exactly the warm start plus ``n_trials`` finished trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from normsweep.core.results import CellResult

CELL_ATTR = "cell"  # "mean|std|seed" of the cell a trial stands for
ROUND_ATTR = "round"  # the round that asked for the trial


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
    """Trials that count towards the requested number: completed, or pruned (a diverged cell)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def slot_seed(round_seed: int, asked: int) -> int:
    """The sampler's seed for a round that holds ``asked`` trials: the round's own seed at its
    first ask; another one when it grows, where the round's seed would draw its first points again."""
    if asked == 0:
        return round_seed
    return int(np.random.SeedSequence((round_seed, asked)).generate_state(1)[0])


def ask_round(
    study: optuna.Study,
    space: SearchSpace,
    round_number: int,
    size: int,
    model: str,
    seed: int,
    sampler: tuple[str, int] | None = None,
) -> list[dict]:
    """The trials of one round: ``size`` trials tagged with the round, asked once. Asking again
    (the round's record was lost, or ``size`` grew) returns the trials already asked and asks
    only the missing ones, so no trial is ever asked twice for one slot. ``sampler`` (name, the
    round's seed): the study's sampler seeded by :func:`slot_seed`, so that a round asked again
    draws what it drew before and a grown round draws new points."""
    from normsweep.core.cells import make_cell

    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROUND_ATTR) == round_number]
    if sampler is not None and len(mine) < size:
        study.sampler = make_sampler(sampler[0], slot_seed(sampler[1], len(mine)))
    for _ in range(size - len(mine)):
        trial = study.ask(space.distributions)  # TPE's constant liar sees the round's running trials
        mean, std = space.point(trial.params)
        cell = make_cell(model, mean, std, seed)
        trial.set_user_attr(ROUND_ATTR, round_number)
        trial.set_user_attr(CELL_ATTR, cell_key(cell.mean, cell.std, cell.seed))
        trial.set_user_attr("source", "optuna")
    mine = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROUND_ATTR) == round_number),
        key=lambda t: t.number,
    )
    out = []
    for t in mine:
        mean_label, std_label, cell_seed = t.user_attrs[CELL_ATTR].split("|")
        out.append({"number": t.number, "params": dict(t.params), "mean": mean_label, "std": std_label,
                    "seed": int(cell_seed), "state": t.state.name})  # fmt: skip
    return out


def tell_round(study: optuna.Study, asked: list[dict], accuracy: dict[str, float]) -> dict[str, int]:
    """Tell the study the round's results (``accuracy``: cell key -> final accuracy, NaN for a
    diverged cell). A trial already told (the round is told again) is left as it is, so no
    trial counts twice; a diverged cell is a pruned trial: finished, with no value."""
    told = {"complete": 0, "diverged": 0, "already": 0}
    running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for entry in asked:
        trial = running.get(entry["number"])
        if trial is None:
            told["already"] += 1
            continue
        value = accuracy[cell_key(entry["mean"], entry["std"], entry["seed"])]
        if math.isfinite(value):
            study.tell(entry["number"], value)
            told["complete"] += 1
        else:
            study._storage.set_trial_user_attr(trial._trial_id, "status", "diverged")
            study.tell(entry["number"], state=TrialState.PRUNED)
            told["diverged"] += 1
    return told


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
