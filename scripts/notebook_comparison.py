"""Rule notebook_comparison: the notebook's published LeNet numbers against our cells."""

import _setup

import pandas as pd

from normsweep.notebook import comparison_markdown, compare_with_notebook
from normsweep.results import write_text_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
cells = pd.read_parquet(snakemake.input[0])  # noqa: F821
table = compare_with_notebook(cells)
table.to_csv(snakemake.output.csv, index=False)  # noqa: F821
epochs = sorted(int(e) for e in cells["epochs_requested"].unique())
n_train = sorted(int(n) for n in cells["n_train"].unique())
write_text_atomic(snakemake.output.md, comparison_markdown(table, epochs, n_train))  # noqa: F821
log.info("%d notebook numbers compared", len(table))
