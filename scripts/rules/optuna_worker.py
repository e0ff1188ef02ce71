"""Rule optuna_worker: run trials until the study holds its requested number. Each trial
trains a cell through the same code path as the grid and writes an ordinary cell result."""

import json
from pathlib import Path

import optuna

import _setup
from normsweep import cells, refine
from normsweep.results import read_result, write_json_atomic
from normsweep.runner import run_cell

log = _setup.start_logging(snakemake.log)
opt = snakemake.params.optuna
model = snakemake.wildcards.model
worker = int(snakemake.wildcards.worker)
study_name = snakemake.params.study
warm = json.loads(Path(snakemake.input.warmstart).read_text())
space = refine.SearchSpace(*warm["space"]["mean"], *warm["space"]["std"], warm["space"]["channels"])
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"] + worker)
if opt["prune"]:
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def evaluate(trial: optuna.Trial) -> float:
    cell = cells.make_cell(model, *space.point(trial.params), opt["seed"])
    path = Path(cell.result_path(study_name))
    if path.exists():  # a point another trial already trained, rounded to the same cell
        return read_result(path).final_accuracy

    def report(epoch) -> None:
        trial.report(epoch.test_accuracy, step=epoch.epoch)
        if opt["prune"] and trial.should_prune():
            Path(cell.checkpoint_path(study_name)).unlink(missing_ok=True)
            raise optuna.TrialPruned(f"epoch {epoch.epoch}: accuracy {epoch.test_accuracy:.4f}")

    log.info("trial %d: mean %s, std %s", trial.number, cell.mean, cell.std)
    result = run_cell(
        model,
        cell.mean,
        cell.std,
        cell.seed,
        snakemake.params.cell,
        path,
        stats_path=snakemake.input.stats,
        checkpoint=cell.checkpoint_path(study_name),
        on_epoch=report,
    )
    return result.final_accuracy


done = refine.run_worker(study, warm["target"], evaluate, space, grace_seconds=opt["grace_seconds"])
log.info(
    "worker %d: %d trials finished; the study holds %d of %d",
    worker,
    done,
    refine.finished(study),
    warm["target"],
)
write_json_atomic(snakemake.output[0], {"worker": worker, "finished": done})
