# Config validation, the cells of the study, and input functions.
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from normsweep import cells as ns_cells  # noqa: E402
from normsweep.config import (  # noqa: E402
    ConfigError,
    cluster_resources,
    per_model,
    runtime_minutes,
    validate_config,
)

# The schema (snakemake.utils.validate, which fills defaults), then the checks it cannot
# express: nothing runs on a bad config, and the message names the key.
try:
    validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None

STUDY = config["study"]
RESULTS = ns_cells.results_dir(STUDY)
LOGS = ns_cells.logs_dir(STUDY)
MODELS = sorted(config["models"])
CELLS = {m: ns_cells.study_cells(m, config["models"][m]) for m in MODELS}
# what one training job asks the cluster for (constants: cheap to plan 10,000 cells)
CLUSTER = cluster_resources(config)
# a retry gets the same limit: it resumes from the cell's last checkpoint, so it goes further
RUNTIME = per_model({m: runtime_minutes(config, m) for m in MODELS})

NOTEBOOK_COMPARISON = (
    [f"{RESULTS}/lenet/tables/notebook.md"] if config["compare_notebook"] and "lenet" in MODELS else []
)
FIGURES = expand(f"{RESULTS}/plots/{{figure}}.png", figure=["heatmap", "histogram", "curves"])


wildcard_constraints:
    model=ns_cells.WILDCARD_PATTERNS["model"],
    mean=ns_cells.WILDCARD_PATTERNS["mean"],
    std=ns_cells.WILDCARD_PATTERNS["std"],
    seed=ns_cells.WILDCARD_PATTERNS["seed"],


def model_config(wildcards):
    return config["models"][wildcards.model]


# What changes a cell's result: its data and training knobs. The grid and the references
# are left out, so that adding grid points never reruns a finished cell.
TRAINING_PARAMS = per_model(
    {
        m: {
            k: config["models"][m].get(k)
            for k in ("data", "training", "image", "weights", "weights_sha256")
        }
        for m in MODELS
    }
)
TRAIN_THREADS = per_model({m: config["models"][m]["training"]["threads"] for m in MODELS})


def runtime_for(wildcards):
    return runtime_minutes(config, wildcards.model)


def cell_results(wildcards):
    return [c.result_path(STUDY) for c in CELLS[wildcards.model]]


def optuna_config(wildcards):
    return config["models"][wildcards.model]["optuna"]


def optuna_params(wildcards):
    """Where the study lives and how it searches: what every optuna rule needs."""
    return {
        "journal": f"{RESULTS}/{wildcards.model}/optuna/journal.log",
        "study_name": f"{STUDY}-{wildcards.model}",
        **optuna_config(wildcards),
    }


def best_seed_cells(wildcards):
    """The best point retrained with several seeds: ordinary grid-style cells."""
    best = checkpoints.optuna_summary.get(model=wildcards.model).output.best
    point = json.loads(Path(best).read_text())
    return [
        ns_cells.Cell(wildcards.model, point["mean_label"], point["std_label"], seed).result_path(STUDY)
        for seed in optuna_config(wildcards)["retrain_seeds"]
    ]
