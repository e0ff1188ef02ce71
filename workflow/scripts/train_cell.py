"""Rule train_cell: train one grid or reference cell, named by its wildcards, and write its result."""

import _setup
from normsweep.core import cells
from normsweep.training.runner import run_cell

log = _setup.start_logging(snakemake.log)
w = snakemake.wildcards
try:
    run_cell(
        model=w.model,
        mean_label=w.mean,
        std_label=w.std,
        seed=int(w.seed),
        model_config=_setup.model_config(snakemake),
        output=snakemake.output[0],
        stats_path=snakemake.input.stats,
        checkpoint=cells.checkpoint_of(snakemake.output[0]),  # beside the result, under checkpoints/
    )
except Exception:
    log.exception("cell %s failed", dict(w.items()))
    raise
