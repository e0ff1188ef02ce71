"""Rule study_summary: the study in one sentence per model, from each model's summary.json."""

import json

import _setup
from normsweep.results import write_text_atomic
from normsweep.table import study_summary_markdown

log = _setup.start_logging(snakemake.log)
summaries = {}
for model, path in zip(snakemake.params.models, snakemake.input, strict=True):
    with open(path) as handle:
        summaries[model] = json.load(handle)[model]
write_text_atomic(snakemake.output[0], study_summary_markdown(summaries))
log.info("%d models summarized", len(summaries))
