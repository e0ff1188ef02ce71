"""The refinement's study: journal storage shared by processes, warm start, exact trial
counts with racing workers, and recovery from a worker killed mid-trial."""

import math
import multiprocessing as mp
import os
import time

import optuna
import pytest
from optuna.trial import TrialState
from test_results import make_result

from normsweep import refine

SPACE = refine.SearchSpace(-1.0, 2.0, 0.05, 1.0)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def fake_accuracy(trial) -> float:
    time.sleep(0.02)
    mean, std = trial.params["mean"], trial.params["std"]
    return 0.99 - 0.001 * (mean - 0.5) ** 2 - 0.001 * math.log(std / 0.3) ** 2


def grid_results():
    out = []
    for m in (-2.0, 0.0, 1.0):  # -2 is outside the space
        for s in (0.02, 0.1, 0.5):  # 0.02 is outside the space
            for seed in (1, 2):
                out.append(
                    make_result(0.98, mean_label=f"{m:g}", std_label=f"{s:g}", mean=[m], std=[s], seed=seed)
                )
    out.append(make_result(0.97, mean_label="none", std_label="none", mean=None, std=None))
    return out


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="low must be below high"):
        refine.SearchSpace(2.0, -1.0, 0.05, 1.0)
    with pytest.raises(ValueError, match="log scale, so 0 < low < high"):
        refine.SearchSpace(-1.0, 2.0, 0.0, 1.0)


def test_warm_start_adds_exactly_the_grid_cells_inside_the_space_once(tmp_path):
    study = refine.open_study(tmp_path / "journal.log", "s")
    assert (
        refine.warm_start(study, grid_results(), SPACE) == 2 * 2 * 2
    )  # means 0, 1 x stds 0.1, 0.5 x 2 seeds
    again = refine.open_study(tmp_path / "journal.log", "s")  # another process, later
    assert refine.warm_start(again, grid_results(), SPACE) == 0
    trials = again.get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["cell"] for t in trials}) == 8


def _worker(path, total, seed):
    study = refine.open_study(path, "s", seed=seed)
    refine.run_worker(study, total, fake_accuracy, SPACE, grace_seconds=60, heartbeat_seconds=0.2)


def test_parallel_workers_stop_at_exactly_the_requested_number(tmp_path):
    path = tmp_path / "journal.log"
    refine.warm_start(refine.open_study(path, "s"), grid_results(), SPACE)
    total = 8 + 15
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(path, total, seed)) for seed in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    study = refine.open_study(path, "s")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == total
    assert len({t.number for t in complete}) == total
    others = [t for t in study.get_trials() if t.state != TrialState.COMPLETE]
    assert all(t.user_attrs.get("surplus") for t in others)  # only given-back surplus trials
    assert len({t.user_attrs.get("worker") for t in complete if "worker" in t.user_attrs}) >= 2


def _dying_worker(path):
    study = refine.open_study(path, "s", seed=7)

    def die(trial):
        time.sleep(0.3)
        os._exit(9)  # killed mid-trial: no tell, no cleanup

    refine.run_worker(study, 5, die, SPACE, heartbeat_seconds=0.1)


def test_a_worker_killed_mid_trial_is_recovered(tmp_path):
    path = tmp_path / "journal.log"
    refine.open_study(path, "s")
    dying = mp.get_context("spawn").Process(target=_dying_worker, args=(path,))
    dying.start()
    dying.join(timeout=60)
    assert dying.exitcode == 9
    study = refine.open_study(path, "s")
    stuck = study.get_trials(states=(TrialState.RUNNING,))
    assert len(stuck) == 1
    time.sleep(1.0)  # its heartbeat goes stale
    done = refine.run_worker(study, 5, fake_accuracy, SPACE, grace_seconds=0.5, heartbeat_seconds=0.1)
    assert done == 5
    trials = study.get_trials()
    assert trials[stuck[0].number].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == stuck[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == stuck[0].params  # the lost point is run again, not dropped
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_pruned_trials_count_as_finished(tmp_path):
    study = refine.open_study(tmp_path / "journal.log", "s")

    def prune_wide(trial):
        trial.report(0.5, step=1)
        if trial.params["std"] > 0.3:
            raise optuna.TrialPruned()
        return fake_accuracy(trial)

    assert refine.run_worker(study, 6, prune_wide, SPACE) == 6
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 6


def test_box_around_the_best_grid_cell():
    means, stds = [-1.0, 0.0, 1.0, 2.0], [0.05, 0.1, 0.5, 1.0]
    results = [
        make_result(
            0.9 if (m, s) != (1.0, 0.1) else 0.99, mean_label=f"{m:g}", std_label=f"{s:g}", mean=[m], std=[s]
        )
        for m in means
        for s in stds
    ]
    box = refine.box_around_best(results, means, stds, SPACE)
    assert (box.mean_low, box.mean_high, box.std_low, box.std_high) == (0.0, 2.0, 0.05, 0.5)


def test_per_channel_space_has_six_parameters_and_warm_starts_from_equal_channels(tmp_path):
    rgb = refine.SearchSpace(-1.0, 2.0, 0.05, 1.0, channels=3)
    assert sorted(rgb.distributions) == ["mean_b", "mean_g", "mean_r", "std_b", "std_g", "std_r"]
    study = refine.open_study(tmp_path / "journal.log", "rgb")
    per_channel = make_result(
        0.9,
        mean_label="0.485,0.456,0.406",
        std_label="0.229,0.224,0.225",
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
    )
    assert refine.warm_start(study, grid_results() + [per_channel], rgb) == 8  # equal channels only
    trial = study.get_trials()[0]
    assert trial.params["mean_r"] == trial.params["mean_g"] == trial.params["mean_b"]
    assert rgb.point(trial.params) == ([trial.params["mean_r"]] * 3, [trial.params["std_r"]] * 3)
