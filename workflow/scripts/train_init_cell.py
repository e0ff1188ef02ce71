"""Rule train_init_cell: one cell of the init study, at the (mean, std) of the config's
init_study block, with conv1's initial weights and biases scaled by its wildcards' factors."""

import _setup
from normsweep.core import cells
from normsweep.training.runner import run_cell

log = _setup.start_logging(snakemake.log)
w = snakemake.wildcards
init_study = snakemake.params.init_study
try:
    run_cell(
        model=w.model,
        mean_label=cells.format_value(init_study["mean"]),
        std_label=cells.format_value(init_study["std"]),
        seed=int(w.seed),
        model_config=_setup.model_config(snakemake),
        output=snakemake.output[0],
        stats_path=snakemake.input.stats,
        checkpoint=snakemake.params.checkpoint,
        init=(float(w.weight), float(w.bias)),
    )
except Exception:
    log.exception("init cell %s failed", dict(w.items()))
    raise
