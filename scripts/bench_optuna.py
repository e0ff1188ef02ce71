"""Seconds of overhead per Optuna trial (journal storage, sampler, the worker's bookkeeping)
when the study already holds many trials.

    .venv/bin/python scripts/bench_optuna.py --trials 500 --measure 20

Fills a journal-file study with --trials completed trials, then times --measure more trials
through normsweep's worker loop with an objective that returns at once: what is left is
the overhead that every real trial pays on top of its training.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import optuna

from normsweep import refine

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--measure", type=int, default=20)
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
        refine.run_worker(
            study, args.trials + args.measure, lambda trial: 0.98, space, heartbeat_seconds=3600
        )
        per_trial = (time.perf_counter() - tic) / args.measure
    print(
        f"{args.sampler} sampler, journal file storage, {args.trials} trials in the study: "
        f"{per_trial:.3f} s of overhead per trial"
    )


if __name__ == "__main__":
    main()
