"""Seconds of overhead per Optuna trial (journal storage, sampler, the rounds' bookkeeping)
when the study already holds many trials.

    .venv/bin/python scripts/bench/refinement.py --trials 500 --measure 24 --batch 8

Fills a journal-file study with --trials completed trials, then asks and tells --measure more
trials in rounds of --batch (normsweep.study.refine.ask_round / tell_round, as the workflow's local
rules do) with results known at once: what is left is the overhead that every real trial pays
on top of its training.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import optuna

from normsweep.core import cells
from normsweep.study import refine

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--measure", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sampler", default="tpe")
    args = parser.parse_args()
    space = refine.SearchSpace(-1.0, 2.0, 0.05, 1.0)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        study = refine.open_study(Path(tmp) / "journal.log", "bench", args.sampler, 0)
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params={"mean": rng.uniform(-1, 2), "std": 0.05 * 20 ** rng.random()},
                    distributions=space.distributions,
                    value=rng.uniform(0.97, 0.99),
                )
                for _ in range(args.trials)
            ]
        )
        tic = time.perf_counter()
        for number, size in enumerate(cells.rounds(args.measure, args.batch)):
            asked = refine.ask_round(study, space, number, size, "lenet", 1998)
            refine.tell_round(
                study, asked, {refine.cell_key(t["mean"], t["std"], t["seed"]): 0.98 for t in asked}
            )
        per_trial = (time.perf_counter() - tic) / args.measure
    print(
        f"{args.sampler} sampler, journal file storage, {args.trials} trials in the study: "
        f"{per_trial:.3f} s of overhead per trial"
    )


if __name__ == "__main__":
    main()
