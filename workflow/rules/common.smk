# Config validation, the cells of the study, and input functions.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from normsweep import cells as ns_cells  # noqa: E402
from normsweep import table as ns_table  # noqa: E402
from normsweep.config import ConfigError, train_resources, validate_config  # noqa: E402

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
FIGURES = expand(f"{RESULTS}/plots/{{figure}}.png", figure=["heatmap", "histogram", "curves"])


wildcard_constraints:
    model=ns_cells.WILDCARD_PATTERNS["model"],
    mean=ns_cells.WILDCARD_PATTERNS["mean"],
    std=ns_cells.WILDCARD_PATTERNS["std"],
    seed=ns_cells.WILDCARD_PATTERNS["seed"],


def model_config(wildcards):
    return config["models"][wildcards.model]


def training_params(wildcards):
    """What changes a cell's result: the data and the training knobs. The grid and the
    references are left out, so that adding grid points never reruns a finished cell."""
    block = model_config(wildcards)
    return {"data": block["data"], "training": block["training"]}


def cell_results(wildcards):
    return [c.result_path(STUDY) for c in CELLS[wildcards.model]]

