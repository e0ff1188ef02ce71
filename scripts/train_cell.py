"""Rules train_cell and train_init_cell: train one cell and write its result.

A grid cell's (mean, std) come from its wildcards; an init-study cell's come from the
config's init_study block, and its wildcards give the factors on conv1's initial weights."""

import _setup

from normsweep import cells
from normsweep.runner import run_cell

log = _setup.start_logging(snakemake.log)  # noqa: F821
w = dict(snakemake.wildcards.items())  # noqa: F821
study = snakemake.config["study"]  # noqa: F821
if "weight" in w:  # the init study
    init_study = snakemake.params.init_study  # noqa: F821
    mean_label, std_label = cells.format_value(init_study["mean"]), cells.format_value(init_study["std"])
    init = (float(w["weight"]), float(w["bias"]))
    checkpoint = f"{cells.results_dir(study)}/{cells.INIT_CHECKPOINT.format(**w)}"
else:
    mean_label, std_label, init = w["mean"], w["std"], (1.0, 1.0)
    checkpoint = cells.Cell(w["model"], w["mean"], w["std"], int(w["seed"])).checkpoint_path(study)
try:
    run_cell(
        model=w["model"],
        mean_label=mean_label,
        std_label=std_label,
        seed=int(w["seed"]),
        model_config=snakemake.params.cell,  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        stats_path=snakemake.input.stats,  # noqa: F821
        checkpoint=checkpoint,
        init=init,
    )
except Exception:
    log.exception("cell %s failed", w)
    raise
