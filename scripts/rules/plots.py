"""Rule plots: heatmap, histogram and learning curves of every model."""

import pandas as pd

import _setup
from normsweep.plots import all_figures
from normsweep.table import threshold_text

_setup.start_logging(snakemake.log)
cells = pd.concat([pd.read_parquet(p) for p in snakemake.input.cells], ignore_index=True)
epochs = pd.concat([pd.read_parquet(p) for p in snakemake.input.epochs], ignore_index=True)
stats = pd.concat([pd.read_parquet(p) for p in snakemake.input.stats], ignore_index=True)
thresholds = {model: threshold_text(levels) for model, levels in snakemake.params.convergence.items()}
all_figures(cells, epochs, snakemake.output, stats, thresholds)
