"""Checkpoint optuna_ask (local): ask the study for this round's trials and write them down;
asking again returns the trials already asked for the round (none is asked twice)."""

import json
from pathlib import Path

import _setup
from normsweep.core.results import write_json_atomic
from normsweep.study import refine

log = _setup.start_logging(snakemake.log)
opt = snakemake.params.optuna
number = int(snakemake.wildcards["round"])
warm = json.loads(Path(snakemake.input.warmstart).read_text())
space = refine.SearchSpace(*warm["space"]["mean"], *warm["space"]["std"], warm["space"]["channels"])
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"])
# one sampler seed per round: a round asked again draws what it drew before, a grown one new points
sampler = (opt["sampler"], opt["seed"] + number)
trials = refine.ask_round(
    study, space, number, snakemake.params.size, snakemake.wildcards.model, opt["seed"], sampler
)
for t in trials:
    log.info("round %d, trial %d: mean %s, std %s (%s)", number, t["number"], t["mean"], t["std"], t["state"])
write_json_atomic(snakemake.output[0], {"round": number, "trials": trials})
