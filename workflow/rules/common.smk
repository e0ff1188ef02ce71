# The study: its config validated, its constants, the wildcards' patterns and the final targets.
# Each stage's own constants and input functions are at the top of its rule file.
import json
import os
import sys
from pathlib import Path

# this file's folder, workflow/rules/ (not workflow.basedir: used as a module, that is the user's folder)
REPO = Path(str(workflow.current_basedir)).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from normsweep.data import cache as ns_cache  # noqa: E402
from normsweep.models import catalog as ns_catalog  # noqa: E402
from normsweep.core import cells as ns_cells  # noqa: E402
from normsweep.core.cells import rounds as refine_rounds  # noqa: E402
from normsweep.study import config as ns_config  # noqa: E402
from normsweep.data import prepare as ns_prepare  # noqa: E402
from normsweep.core import provenance as ns_provenance  # noqa: E402
from normsweep.models import published as ns_published  # noqa: E402
from normsweep.study import resources as ns_resources  # noqa: E402
from normsweep.study.config import ConfigError, validate_config  # noqa: E402
from normsweep.study.resources import (  # noqa: E402
    cell_params,
    cluster_resources,
    pack_runtime_minutes,
    per_model,
    round_pack_runtime_minutes,
    runtime_minutes,
    sbatch_extra,
)

# The schema (snakemake.utils.validate, which fills defaults), then the checks it cannot
# express: nothing runs on a bad config, and the message names the key.
if not config:
    raise WorkflowError(
        "No config: give one with --configfile (config/full.yaml is the notebook's study, "
        "config/config.yaml the demo that the workflow profile workflow/profiles/default picks "
        "when --configfile is left out)"
    )
try:
    validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None

STUDY = config["study"]
RESULTS = ns_cells.results_dir(STUDY)
LOGS = ns_cells.logs_dir(STUDY)
MODELS = sorted(config["models"])
# what each model's architecture needs, derived from its network (normsweep.models.catalog)
MODEL_INFO = {m: ns_config.info_of(m, config["models"][m]) for m in MODELS}
IMAGE_MODELS = [m for m in MODELS if MODEL_INFO[m].dataset != "mnist"]
# Per-channel cells were named with commas, which fail on SLURM (see normsweep.core.cells): stop
# on such names rather than train their cells again under the new ones. Only models with
# several channels can have them: a LeNet study's every start (and every job's) lists nothing.
if OLD_CHANNEL_NAMES := ns_cells.old_channel_names(
    STUDY, models=[m for m in MODELS if MODEL_INFO[m].channels > 1]
):
    raise WorkflowError(
        f"study {STUDY} holds {len(OLD_CHANNEL_NAMES)} per-channel cell folders named the old way, "
        f"with commas (e.g. {OLD_CHANNEL_NAMES[0]}); rename them once, keeping every result: "
        f"{sys.executable} {REPO / 'scripts' / 'rename_channel_labels.py'} "
        f"with the same --configfile (and --directory) as this run"
    )
CELLS = {m: ns_cells.study_cells(m, config["models"][m]) for m in MODELS}


wildcard_constraints:
    model=ns_cells.WILDCARD_PATTERNS["model"],
    mean=ns_cells.WILDCARD_PATTERNS["mean"],
    std=ns_cells.WILDCARD_PATTERNS["std"],
    seed=ns_cells.WILDCARD_PATTERNS["seed"],
    datakey=ns_cells.WILDCARD_PATTERNS["datakey"],
    split="train|val",
    shard=r"[0-9]{5}",
    signature=r"[0-9a-f]{16}",
    pack=ns_cells.WILDCARD_PATTERNS["pack"],
    round=r"[0-9]+",


def model_config(wildcards):
    return config["models"][wildcards.model]


def final_targets():
    """`all`: each model's tables and summary, the figures, the config's copy, and what the
    config asks for (the notebook comparison, each refinement's results)."""
    refined = [m for m in MODELS if config["models"][m].get("optuna")]
    compared = ["lenet"] if config["compare_notebook"] and "lenet" in MODELS else []
    return [
        *expand(f"{RESULTS}/{{model}}/tables/summary.md", model=MODELS),
        *expand(f"{RESULTS}/plots/{{figure}}.png", figure=["heatmap", "histogram", "curves"]),
        f"{RESULTS}/config.yaml",
        *expand(f"{RESULTS}/{{model}}/tables/notebook.md", model=compared),
        *expand(
            [
                f"{RESULTS}/{{model}}/optuna/best_seeds.json",
                f"{RESULTS}/{{model}}/optuna/history.png",
                f"{RESULTS}/{{model}}/tables/cells_refined.parquet",
            ],
            model=refined,
        ),
    ]
