"""Rule optuna_best_seeds: the best point retrained with several seeds, as mean and spread."""

import _setup

import json
from pathlib import Path

import numpy as np

from normsweep.noise import confidence_interval
from normsweep.results import read_result, write_json_atomic
from normsweep.table import cells_table

log = _setup.start_logging(snakemake.log)  # noqa: F821
best = json.loads(Path(snakemake.input.best).read_text())  # noqa: F821
acc = np.array([read_result(p).final_accuracy for p in snakemake.input.cells])  # noqa: F821
low, high = confidence_interval(acc)
summary = {**best, "seeds_accuracy": acc.tolist(), "seeds_mean": float(np.nanmean(acc)),
           "seeds_sd": float(np.nanstd(acc, ddof=1)) if len(acc) > 1 else None, "ci95": [low, high]}
write_json_atomic(snakemake.output.best, summary)  # noqa: F821

# the tidy table once more, now with every refined point and the retrained best
results = [read_result(p) for p in sorted(Path(snakemake.params.cells_folder).rglob("seed~*.json"))]  # noqa: F821
table = cells_table(results, {snakemake.wildcards.model: snakemake.params.roles})  # noqa: F821
table.to_csv(snakemake.output.cells_csv, index=False)  # noqa: F821
table.to_parquet(snakemake.output.cells_parquet, index=False)  # noqa: F821
log.info("best point (%s, %s) over %d seeds: %.4f", best["mean_label"], best["std_label"], len(acc), summary["seeds_mean"])
