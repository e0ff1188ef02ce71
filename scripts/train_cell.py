"""Rule train_cell: train one (model, mean, std, seed) cell and write its result."""

import _setup

from normsweep.cells import Cell
from normsweep.runner import run_cell

log = _setup.start_logging(snakemake.log)  # noqa: F821
w = snakemake.wildcards  # noqa: F821
try:
    run_cell(
        model=w.model,
        mean_label=w.mean,
        std_label=w.std,
        seed=int(w.seed),
        model_config=snakemake.params.cell,  # noqa: F821
        output=snakemake.output[0],  # noqa: F821
        stats_path=snakemake.input.stats,  # noqa: F821
        checkpoint=Cell(w.model, w.mean, w.std, int(w.seed)).checkpoint_path(snakemake.config["study"]),  # noqa: F821
    )
except Exception:
    log.exception("cell %s mean=%s std=%s seed=%s failed", w.model, w.mean, w.std, w.seed)
    raise
