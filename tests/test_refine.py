"""The refinement's study: warm start, rounds of asked and told trials with exact counts,
idempotent when a round is asked or told again."""

import math

import optuna
import pytest
from optuna.trial import TrialState
from test_results import make_result

from normsweep.core import cells
from normsweep.study import refine

SPACE = refine.SearchSpace(-1.0, 2.0, 0.05, 1.0)
optuna.logging.set_verbosity(optuna.logging.WARNING)


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


def accuracy_of(trials):
    """A fake training of the asked cells: accuracy by cell key, as tell_round takes it."""
    out = {}
    for t in trials:
        mean, std = float(t["mean"]), float(t["std"])
        out[refine.cell_key(t["mean"], t["std"], t["seed"])] = (
            0.99 - 0.001 * (mean - 0.5) ** 2 - 0.001 * math.log(std / 0.3) ** 2
        )
    return out


def test_rounds_of_the_requested_sizes():
    assert cells.rounds(200, 8) == [8] * 25
    assert cells.rounds(10, 4) == [4, 4, 2]
    assert cells.rounds(3, 8) == [3]


def test_rounds_end_with_exactly_the_warm_start_plus_n_trials(tmp_path):
    study = refine.open_study(tmp_path / "journal.log", "s", seed=1)
    warm = refine.warm_start(study, grid_results(), SPACE)
    for number, size in enumerate(cells.rounds(10, 4)):
        asked = refine.ask_round(study, SPACE, number, size, "lenet", 1998)
        assert len(asked) == size and all(t["state"] == "RUNNING" for t in asked)
        told = refine.tell_round(study, asked, accuracy_of(asked))
        assert told["complete"] == size
    assert refine.finished(study) == warm + 10
    numbers = [t.number for t in study.get_trials() if t.user_attrs.get("round") is not None]
    assert len(numbers) == len(set(numbers)) == 10


def test_a_round_asked_or_told_again_adds_and_counts_nothing(tmp_path):
    """The ask's record lost (a killed snakemake), the tell redone: the same trials."""
    path = tmp_path / "journal.log"
    study = refine.open_study(path, "s", seed=1)
    first = refine.ask_round(study, SPACE, 0, 3, "lenet", 1998)
    again = refine.ask_round(refine.open_study(path, "s", seed=1), SPACE, 0, 3, "lenet", 1998)
    assert [t["number"] for t in again] == [t["number"] for t in first]
    # one trial told, then the process dies; the round is told again in full
    refine.tell_round(study, first[:1], accuracy_of(first))
    told = refine.tell_round(refine.open_study(path, "s", seed=1), again, accuracy_of(again))
    assert told == {"complete": 2, "diverged": 0, "already": 1}
    assert refine.finished(refine.open_study(path, "s")) == 3
    # the round grows (n_trials raised): only the missing trial is asked
    grown = refine.ask_round(study, SPACE, 0, 4, "lenet", 1998)
    assert len(grown) == 4 and [t["number"] for t in grown][:3] == [t["number"] for t in first]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_grown_round_asks_new_points_and_a_round_asked_again_the_same(tmp_path, sampler):
    """As the workflow asks (a process per ask, the round's sampler seed): n_trials raised, the
    round's new trial is a new point, not its first trial's point drawn again by the same seed."""
    path = tmp_path / "journal.log"

    def ask(size):
        return refine.ask_round(
            refine.open_study(path, "s", sampler), SPACE, 1, size, "lenet", 1998, (sampler, 8)
        )

    first = ask(2)
    assert ask(2) == first  # asked again: the same trials
    grown = ask(3)
    assert grown[:2] == first
    points = [(t["mean"], t["std"]) for t in grown]
    assert len(set(points)) == 3, points
    # another study asked the same way draws the same points
    path = tmp_path / "other.log"
    assert [(t["mean"], t["std"]) for t in ask(2) + ask(3)[2:]] == points


def test_a_diverged_trial_cell_is_a_finished_trial_without_a_value(tmp_path):
    study = refine.open_study(tmp_path / "journal.log", "s", seed=1)
    asked = refine.ask_round(study, SPACE, 0, 2, "lenet", 1998)
    accuracy = accuracy_of(asked)
    accuracy[refine.cell_key(asked[0]["mean"], asked[0]["std"], asked[0]["seed"])] = math.nan
    assert refine.tell_round(study, asked, accuracy) == {"complete": 1, "diverged": 1, "already": 0}
    states = {t.number: t.state for t in study.get_trials()}
    assert states[asked[0]["number"]] == TrialState.PRUNED and refine.finished(study) == 2


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
        mean_label="0.485_0.456_0.406",
        std_label="0.229_0.224_0.225",
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
    )
    assert refine.warm_start(study, grid_results() + [per_channel], rgb) == 8  # equal channels only
    trial = study.get_trials()[0]
    assert trial.params["mean_r"] == trial.params["mean_g"] == trial.params["mean_b"]
    assert rgb.point(trial.params) == ([trial.params["mean_r"]] * 3, [trial.params["std_r"]] * 3)
