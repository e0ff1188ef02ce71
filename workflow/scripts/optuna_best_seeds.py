"""Rule optuna_best_seeds: the best point retrained with several seeds, as mean and spread."""

import json
from pathlib import Path

import numpy as np

import _setup
from normsweep.analysis.statistics import confidence_interval
from normsweep.analysis.table import cells_table
from normsweep.core.results import read_result, write_json_atomic

log = _setup.start_logging(snakemake.log)
best = json.loads(Path(snakemake.input.best).read_text())
acc = np.array([read_result(p).final_accuracy for p in snakemake.input.cells])
low, high = confidence_interval(acc)
summary = {
    **best,
    "seeds_accuracy": acc.tolist(),
    "seeds_mean": float(np.nanmean(acc)),
    "seeds_sd": float(np.nanstd(acc, ddof=1)) if len(acc) > 1 else None,
    "ci95": [low, high],
}
write_json_atomic(snakemake.output.best, summary)

# the tidy table once more, now with every refined point and the retrained best
results = [read_result(p) for p in sorted(Path(snakemake.params.cells_folder).rglob("seed~*.json"))]
table = cells_table(results, {snakemake.wildcards.model: snakemake.params.roles})
table.to_csv(snakemake.output.cells_csv, index=False)
table.to_parquet(snakemake.output.cells_parquet, index=False)
log.info(
    "best point (%s, %s) over %d seeds: %.4f",
    best["mean_label"],
    best["std_label"],
    len(acc),
    summary["seeds_mean"],
)
