"""Checkpoint optuna_summary: the trials table, the best point, and the plots."""

import matplotlib

import _setup

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.visualization.matplotlib import plot_optimization_history  # noqa: E402

from normsweep.analysis.plots import trials_over_grid  # noqa: E402
from normsweep.core import cells  # noqa: E402
from normsweep.core.results import write_json_atomic  # noqa: E402
from normsweep.study import refine

log = _setup.start_logging(snakemake.log)
opt = snakemake.params.optuna
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"])
trials = study.trials_dataframe(
    attrs=("number", "value", "state", "params", "user_attrs", "datetime_complete")
)
trials.to_csv(snakemake.output.trials_csv, index=False)
trials.to_parquet(snakemake.output.trials_parquet, index=False)
best = study.best_trial
space = refine.SearchSpace(*opt["mean"], *opt["std"], channels=3 if opt["per_channel"] else 1)
mean, std = space.point(best.params)
mean_label, std_label = cells.format_value(mean), cells.format_value(std)
write_json_atomic(
    snakemake.output.best,
    {
        "number": best.number,
        "accuracy": best.value,
        "mean": mean,
        "std": std,
        "mean_label": mean_label,
        "std_label": std_label,
        "source": best.user_attrs.get("source", "optuna"),
        "n_complete": refine.finished(study),
    },
)
ax = plot_optimization_history(study, target_name="test accuracy")
ax.set_title(f"{snakemake.wildcards.model}: Optuna optimization history")
ax.figure.set_size_inches(9, 5)
ax.figure.tight_layout()
ax.figure.savefig(snakemake.output.history, dpi=130)
plt.close(ax.figure)
for axis in ("mean", "std"):  # per-channel trials are drawn at their channel average
    columns = [f"params_{n}" for n in space.names(axis)]
    trials[f"params_{axis}"] = trials[columns].mean(axis=1)
trials_over_grid(
    pd.read_parquet(snakemake.input.grid), trials, snakemake.wildcards.model, snakemake.output.over_grid
)
log.info("best trial %d: mean %s std %s accuracy %.4f", best.number, mean_label, std_label, best.value)
