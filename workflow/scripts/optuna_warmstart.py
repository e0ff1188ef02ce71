"""Rule optuna_warmstart: open (or create) the model's study, add the finished grid cells
inside the search space as completed trials (once each), and fix the search space (the
configured ranges, or a box around the best grid cell)."""

import _setup
from normsweep.core import cells
from normsweep.core.results import configured, read_result, result_files, write_json_atomic
from normsweep.study import refine

log = _setup.start_logging(snakemake.log)
opt = snakemake.params.optuna
space = refine.SearchSpace(*opt["mean"], *opt["std"], channels=3 if opt["per_channel"] else 1)
found = [read_result(p) for p in result_files(snakemake.input)]
results = [found[i] for i in configured(found, snakemake.params.roles, snakemake.params.seeds)]
if opt["box"]:
    grid = snakemake.params.grid
    space = refine.box_around_best(
        results, cells.axis_values(grid["mean"], "linear"), cells.axis_values(grid["std"], "log"), space
    )
    log.info(
        "box around the best grid cell: mean [%g, %g], std [%g, %g]",
        space.mean_low,
        space.mean_high,
        space.std_low,
        space.std_high,
    )
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"])
added = refine.warm_start(study, results, space)
complete = refine.finished(study)
log.info("warm start: %d new grid trials, %d finished trials in the study", added, complete)
write_json_atomic(
    snakemake.output[0],
    {
        "added": added,
        "complete": complete,
        "space": {
            "mean": [space.mean_low, space.mean_high],
            "std": [space.std_low, space.std_high],
            "channels": space.channels,
        },
    },
)
