"""Rule notebook_comparison: the notebook's published LeNet numbers against our cells."""

import pandas as pd

import _setup
from normsweep.analysis.notebook import compare_with_notebook, comparison_markdown
from normsweep.core.results import write_text_atomic

log = _setup.start_logging(snakemake.log)
cells = pd.read_parquet(snakemake.input[0])
table = compare_with_notebook(cells)
table.to_csv(snakemake.output.csv, index=False)
epochs = sorted(int(e) for e in cells["epochs_requested"].unique())
n_train = sorted(int(n) for n in cells["n_train"].unique())
write_text_atomic(snakemake.output.md, comparison_markdown(table, epochs, n_train))
log.info("%d notebook numbers compared", len(table))
