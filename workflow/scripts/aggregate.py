"""Rule aggregate: every cell result of a model into tidy tables and a summary."""

import sys

import _setup
from normsweep.analysis.summary import write_tables
from normsweep.core import provenance
from normsweep.core.results import ResultError

log = _setup.start_logging(snakemake.log)
model = snakemake.wildcards.model
try:
    summary = write_tables(
        snakemake.input.results,
        roles={model: snakemake.params.roles},
        baseline={model: snakemake.params.baseline},
        out=snakemake.output,
        convergence={model: snakemake.params.convergence},
        published={model: snakemake.params.published},
        data_version={model: provenance.record_version(snakemake.input.record)},
        seeds={model: snakemake.params.seeds},
    )
except ResultError as error:  # unreadable cell files: name them all and the fix, no traceback
    log.error("%s", error)
    sys.exit(1)
log.info("%s: %d results in %d cells", model, summary[model]["n_results"], summary[model]["n_cells"])
