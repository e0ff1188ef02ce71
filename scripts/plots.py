"""Rule plots: heatmap, histogram and learning curves of every model."""

import _setup

import pandas as pd

from normsweep.plots import all_figures

_setup.start_logging(snakemake.log)  # noqa: F821
cells = pd.concat([pd.read_parquet(p) for p in snakemake.input.cells], ignore_index=True)  # noqa: F821
epochs = pd.concat([pd.read_parquet(p) for p in snakemake.input.epochs], ignore_index=True)  # noqa: F821
stats = pd.concat([pd.read_parquet(p) for p in snakemake.input.stats], ignore_index=True)  # noqa: F821
all_figures(cells, epochs, snakemake.output, stats)  # noqa: F821
