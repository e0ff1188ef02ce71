"""Rule init_table: the init study's cells into a table and a heatmap over the two factors."""

import _setup
from normsweep.analysis.plots import init_heatmap
from normsweep.analysis.table import init_frame
from normsweep.core.results import read_result

log = _setup.start_logging(snakemake.log)
frame = init_frame([read_result(p) for p in snakemake.input])
frame.to_csv(snakemake.output.table, index=False)
init_heatmap(frame, snakemake.output.heatmap)
log.info("%d init-study results", len(frame))
