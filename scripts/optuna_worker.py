"""Rule optuna_worker: run trials until the study holds its requested number. Each trial
trains a cell through the same code path as the grid and writes an ordinary cell result."""

import _setup

import json
from pathlib import Path

from normsweep import cells, refine
from normsweep.results import read_result, write_json_atomic
from normsweep.runner import run_cell

log = _setup.start_logging(snakemake.log)  # noqa: F821
opt = snakemake.params.optuna  # noqa: F821
model = snakemake.wildcards.model  # noqa: F821
worker = int(snakemake.wildcards.worker)  # noqa: F821
study_name = snakemake.config["study"]  # noqa: F821
target = json.loads(Path(snakemake.input.warmstart).read_text())["target"]  # noqa: F821
space = refine.SearchSpace(*opt["mean"], *opt["std"])
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"] + worker)


def evaluate(mean: float, std: float) -> float:
    cell = cells.make_cell(model, mean, std, opt["seed"])
    path = Path(cell.result_path(study_name))
    if path.exists():  # a point another trial already trained, rounded to the same cell
        return read_result(path).final_accuracy
    log.info("trial: mean %s, std %s", cell.mean, cell.std)
    return run_cell(model, cell.mean, cell.std, cell.seed, snakemake.params.cell, path,  # noqa: F821
                    stats_path=snakemake.input.stats, checkpoint=cell.checkpoint_path(study_name)).final_accuracy  # noqa: F821


done = refine.run_worker(study, target, evaluate, space, grace_seconds=opt["grace_seconds"])
log.info("worker %d: %d trials completed; the study holds %d of %d", worker, done, refine.finished(study), target)
write_json_atomic(snakemake.output[0], {"worker": worker, "completed": done})  # noqa: F821
