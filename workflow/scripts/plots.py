"""Rule plots: heatmap, histogram and learning curves of every model, and the study in one
sentence per model (from each model's summary.json)."""

import json

import pandas as pd

import _setup
from normsweep.analysis.comparisons import threshold_text
from normsweep.analysis.plots import all_figures
from normsweep.analysis.summary import study_summary_markdown
from normsweep.core.results import write_text_atomic

_setup.start_logging(snakemake.log)
cells = pd.concat([pd.read_parquet(p) for p in snakemake.input.cells], ignore_index=True)
epochs = pd.concat([pd.read_parquet(p) for p in snakemake.input.epochs], ignore_index=True)
stats = pd.concat([pd.read_parquet(p) for p in snakemake.input.stats], ignore_index=True)
thresholds = {model: threshold_text(levels) for model, levels in snakemake.params.convergence.items()}
all_figures(cells, epochs, snakemake.output, stats, thresholds)
summaries = {}
for model, path in zip(snakemake.params.models, snakemake.input.summaries, strict=True):
    with open(path) as handle:
        summaries[model] = json.load(handle)[model]
write_text_atomic(snakemake.output.summary, study_summary_markdown(summaries))
