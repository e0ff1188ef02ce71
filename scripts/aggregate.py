"""Rule aggregate: every cell result of a model into tidy tables and a summary."""

import _setup

from normsweep.table import write_tables

log = _setup.start_logging(snakemake.log)  # noqa: F821
model = snakemake.wildcards.model  # noqa: F821
summary = write_tables(
    snakemake.input,  # noqa: F821
    roles={model: snakemake.params.roles},  # noqa: F821
    baseline={model: snakemake.params.baseline},  # noqa: F821
    out=snakemake.output,  # noqa: F821
)
log.info("%s: %d results in %d cells", model, summary[model]["n_results"], summary[model]["n_cells"])
