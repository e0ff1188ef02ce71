"""Rule optuna_warmstart: open (or create) the model's study and add the finished grid cells
inside the search space as completed trials, once each."""

import _setup

from normsweep import refine
from normsweep.results import read_result, write_json_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
opt = snakemake.params.optuna  # noqa: F821
space = refine.SearchSpace(*opt["mean"], *opt["std"])
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"])
added = refine.warm_start(study, [read_result(p) for p in snakemake.input], space)  # noqa: F821
complete = refine.finished(study)
log.info("warm start: %d new grid trials, %d completed trials in the study", added, complete)
write_json_atomic(snakemake.output[0], {"added": added, "complete": complete,  # noqa: F821
                                        "target": complete + opt["n_trials"]})
