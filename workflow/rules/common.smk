# Config validation, the cells of the study, and input functions.
import json
import os
import sys
from pathlib import Path

from snakemake.logging import logger

# this file's folder, workflow/rules/ (not workflow.basedir: used as a module, that is the user's folder)
REPO = Path(str(workflow.current_basedir)).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from normsweep import cache as ns_cache  # noqa: E402
from normsweep import catalog as ns_catalog  # noqa: E402
from normsweep import cells as ns_cells  # noqa: E402
from normsweep.cells import rounds as refine_rounds  # noqa: E402
from normsweep import config as ns_config  # noqa: E402
from normsweep import images as ns_images  # noqa: E402
from normsweep import provenance as ns_provenance  # noqa: E402
from normsweep import published as ns_published  # noqa: E402
from normsweep import jobs as ns_jobs  # noqa: E402
from normsweep.config import ConfigError, validate_config  # noqa: E402
from normsweep.jobs import (  # noqa: E402
    cell_params,
    cluster_resources,
    pack_runtime_minutes,
    per_model,
    round_pack_runtime_minutes,
    runtime_minutes,
    sbatch_extra,
)


def check_scripts_once_per_rule():
    """Snakemake 9 checks before running that a rule's script exists once per *job*
    (snakemake.dag.ScriptProcessor, through its source cache): 5 s of a 15 s dry run at
    10,000 cells. No script path here depends on wildcards, so checking each rule's script
    once gives the same answer (a missing script still stops the run). Left as it is when
    Snakemake's internals differ from 9.27's."""
    try:
        from snakemake.dag import ScriptProcessor
    except ImportError:
        return
    original = getattr(ScriptProcessor, "process_job", None)
    if original is None or getattr(original, "once_per_rule", False):
        return

    def process_job(self, job):
        checked = self.__dict__.setdefault("scripts_checked", set())
        key = (job.rule.name, self.script_type)
        if key not in checked:
            original(self, job)
            checked.add(key)

    process_job.once_per_rule = True
    ScriptProcessor.process_job = process_job


check_scripts_once_per_rule()

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
# what each model's architecture needs, derived from its network (normsweep.catalog)
INFO = {m: ns_config.info_of(m, config["models"][m]) for m in MODELS}
IMAGE_MODELS = [m for m in MODELS if INFO[m].dataset != "mnist"]
# Per-channel cells were named with commas, which fail on SLURM (see normsweep.cells): stop
# on such names rather than train their cells again under the new ones. Only models with
# several channels can have them: a LeNet study's every start (and every job's) lists nothing.
if OLD_CHANNEL_NAMES := ns_cells.old_channel_names(STUDY, models=[m for m in MODELS if INFO[m].channels > 1]):
    raise WorkflowError(
        f"study {STUDY} holds {len(OLD_CHANNEL_NAMES)} per-channel cell folders named the old way, "
        f"with commas (e.g. {OLD_CHANNEL_NAMES[0]}); rename them once, keeping every result: "
        f"{sys.executable} {REPO / 'scripts' / 'rename_channel_labels.py'} "
        f"with the same --configfile (and --directory) as this run"
    )
CELLS = {m: ns_cells.study_cells(m, config["models"][m]) for m in MODELS}
# what one training job asks the cluster for (constants: cheap to plan 10,000 cells)
CLUSTER = cluster_resources(config)
# A retry (profiles/slurm: retries) gets the same limit: it resumes from the cell's last
# checkpoint, so every attempt goes further than the one before.
RUNTIME = per_model({m: runtime_minutes(config, m) for m in MODELS})
# sbatch --signal: told to save before the time limit (and cluster.slurm_extra)
SBATCH_EXTRA = per_model({m: sbatch_extra(config, runtime_minutes(config, m)) for m in MODELS})

NOTEBOOK_COMPARISON = (
    [f"{RESULTS}/lenet/tables/notebook.md"] if config["compare_notebook"] and "lenet" in MODELS else []
)
FIGURES = expand(f"{RESULTS}/plots/{{figure}}.png", figure=["heatmap", "histogram", "curves"])


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


# Each model's data check, statistics and image caches live in results/<study>/<model>/data/<key>/,
# the key a hash of the data folder and image size: a new folder or size gives new files,
# which every cell sees (see ns_cells.data_key).
DATA_DIR = {
    m: f"{RESULTS}/{m}/data/{ns_cells.data_key(config['models'][m], m in IMAGE_MODELS)}" for m in MODELS
}
# The prepared shards themselves live in the data cache, one copy per folder and preprocessing
# (the data key), shared by every model and study that asks for it (normsweep.cache).
DATA_CACHE = config["data_cache"]
KEY_MODELS = {}
for _m in IMAGE_MODELS:
    KEY_MODELS.setdefault(ns_cells.data_key(config["models"][_m], True), []).append(_m)


def data_record(wildcards):
    """The model's data record (files.json), which holds the version of its data."""
    return f"{DATA_DIR[wildcards.model]}/files.json"


def data_stats(wildcards):
    """The data set statistics (and image cache) a job of the model reads."""
    return f"{DATA_DIR[wildcards.model]}/stats.json"


# For training cells, ancient: rerunning the data check (e.g. after `download` changed) remakes
# the same numbers and must not retrain finished cells; a real change of the data gives another
# folder, hence a new input. A constant when the study has one model (cheap for 10,000 cells).
CELL_DATA_STATS = per_model({m: ancient(f"{DATA_DIR[m]}/stats.json") for m in MODELS})


def data_params(wildcards):
    """What the data rules make from: the folder, whether MNIST may be fetched, the image size."""
    block = model_config(wildcards)
    params = {
        "root": block["data"],
        "download": block["download"],
        "image": block["image"] if wildcards.model in IMAGE_MODELS else None,
    }
    if wildcards.model in IMAGE_MODELS and len(ns_config.image_splits(block)) == 1:
        params["splits"] = ["val"]  # evaluation only: train/ is neither prepared nor needed
    return params


def image_params(wildcards):
    """How a shard is made: the image size and, when not bilinear, the interpolation (the
    shard's images come from the listing); the same for every model of its data key."""
    image = config["models"][KEY_MODELS[wildcards.datakey][0]]["image"]
    return {k: image[k] for k in ("resize", "crop", "interpolation") if k in image}


def folder_stamp(wildcards):
    """The ImageFolder's split and class folders' times (cheap: no file is listed); MNIST: none."""
    if wildcards.model not in IMAGE_MODELS:
        return None
    block = model_config(wildcards)
    return ns_images.folder_stamp(block["data"], ns_config.image_splits(block))


_LISTINGS = {}


def read_listing(wildcards):
    """The model's ImageFolder listing (once the list_images checkpoint ran), read once per change."""
    path = checkpoints.list_images.get(model=wildcards.model, datakey=wildcards.datakey).output[0]
    stamp = os.stat(path).st_mtime_ns
    if _LISTINGS.get(path, (None,))[0] != stamp:
        with open(path) as handle:
            _LISTINGS[path] = (stamp, json.load(handle))
    return _LISTINGS[path][1]


def listing_path(wildcards):
    return f"{RESULTS}/{wildcards.model}/data/{wildcards.datakey}/listing.json"


def shard_manifests(wildcards, splits=ns_images.SPLITS, pixels=False):
    """The manifests of the model's shards in the data cache (their names carry the images'
    signature), and with ``pixels`` their pixel files too (a file deleted by hand is then missing
    input, and its shard is prepared again)."""
    listing = read_listing(wildcards)
    paths = [
        ns_cache.cache_paths(DATA_CACHE, wildcards.datakey, split, i, shard["signature"])
        for split in splits
        if split in listing
        for i, shard in enumerate(listing[split]["shards"])
    ]
    return [str(m) for _, m in paths] + ([str(p) for p, _ in paths] if pixels else [])


def data_inputs(wildcards):
    """The data record's inputs: an ImageFolder's listing and every shard's manifest; MNIST none."""
    if wildcards.model not in IMAGE_MODELS:
        return []
    return [ancient(listing_path(wildcards)), *shard_manifests(wildcards, pixels=True)]


def train_shard_manifests(wildcards):
    """The training split's shard manifests (their histograms give the exact statistics); an
    evaluation-only study's val/ (its statistics then, recorded as such: no cell uses them)."""
    if wildcards.model not in IMAGE_MODELS:
        return []
    return shard_manifests(wildcards, ("train",)) or shard_manifests(wildcards, ("val",))


def missing_shards(wildcards):
    """The shards the model's data record names that are gone from the data cache (deleted by
    hand): a change of this param reruns the data check, whose inputs then prepare them again
    (snakemake alone would not remake a missing file that an up-to-date output was made from)."""
    if wildcards.model not in IMAGE_MODELS:
        return []
    return ns_cache.missing_shards(f"{RESULTS}/{wildcards.model}/data/{wildcards.datakey}/files.json")


RECORD_FORMAT = 2


def mnist_stamp(wildcards):
    """MNIST's files' names, sizes and times (cheap: none is read); an ImageFolder: none (its
    listing follows the folder's stamp)."""
    if wildcards.model in IMAGE_MODELS:
        return None
    return ns_provenance.mnist_stamp(model_config(wildcards)["data"])


def key_listings(wildcards):
    """Every listing of this study with the data key of a cache shard (the prepare job takes its
    images from the one that holds the shard's signature)."""
    return [
        ancient(f"{RESULTS}/{m}/data/{wildcards.datakey}/listing.json") for m in KEY_MODELS[wildcards.datakey]
    ]


# A prepare job holds one image at a time (plus torch and PIL): its memory does not grow with
# the shard; its time does (about 0.1 s per full-size JPEG, measured 0.01-0.04 s here).
PREPARE_MEM_MB = 2000


def prepare_runtime(wildcards):
    size = max(config["models"][m]["image"]["shard_size"] for m in KEY_MODELS[wildcards.datakey])
    return 10 + (size + 599) // 600


def cell_roles(wildcards):
    return ns_cells.cell_roles(wildcards.model, model_config(wildcards))


def model_seeds(wildcards):
    return list(model_config(wildcards)["seeds"])


def convergence_levels(wildcards):
    return model_config(wildcards)["convergence"]


def baseline(wildcards):
    return model_config(wildcards).get("baseline")


def published(wildcards):
    """The model's pretrained weights' own preprocessing and published top-1 (or None)."""
    block = model_config(wildcards)
    arch = ns_catalog.arch_of(wildcards.model, block)
    own = ns_published.preprocessing(arch, block.get("weights"))
    return own.to_dict() if own else None


def fold_cells(wildcards):
    """The (mean, std) of the model's cells, once each (the first seed's)."""
    first_seed = CELLS[wildcards.model][0].seed
    return [(c.mean, c.std) for c in CELLS[wildcards.model] if c.seed == first_seed]


def init_study(wildcards):
    return model_config(wildcards)["init_study"]


def init_results(wildcards):
    block = model_config(wildcards)
    return [
        f"{RESULTS}/{ns_cells.INIT_RESULT.format(**c)}"
        for c in ns_cells.init_cells(wildcards.model, block["init_study"], block["seeds"])
    ]


def final_targets():
    """The default targets (of `all`): tables, figures, the config, and the extras the
    config asks for."""
    return [
        *expand(f"{RESULTS}/{{model}}/tables/summary.md", model=MODELS),
        *FIGURES,
        f"{RESULTS}/config.yaml",
        *NOTEBOOK_COMPARISON,
        *OPTUNA_TARGETS,
    ]


# What changes a cell's result: its data and training knobs (not the grid or the references,
# so adding grid points reruns no finished cell; not threads or device, which change how a
# cell runs, not what it is: they reach the job as its threads and the torch_device resource).
TRAINING_PARAMS = per_model({m: cell_params(config["models"][m], m) for m in MODELS})
TRAIN_THREADS = per_model({m: config["models"][m]["training"]["threads"] for m in MODELS})
TRAIN_DEVICE = per_model({m: config["models"][m]["training"]["device"] for m in MODELS})
# inside-epoch checkpoints (0: at epoch ends only), a resource like the device: changing it retrains nothing
TRAIN_CHECKPOINT_SECONDS = per_model(
    {m: ns_jobs.checkpoint_seconds(config["models"][m]["training"]) for m in MODELS}
)
# How a training job runs, as its resources (every training rule has them; none retrains a
# cell): torch_device, checkpoint_seconds, and the switches torch_channels_last,
# torch_cudnn_benchmark and torch_compile (auto | true | false).
TRAIN_EXECUTION = {
    "torch_device": TRAIN_DEVICE,
    "checkpoint_seconds": TRAIN_CHECKPOINT_SECONDS,
    **{
        f"torch_{key}": per_model(
            {m: ns_jobs.switch_resources(config["models"][m]["training"])[key] for m in MODELS}
        )
        for key in ns_jobs.SWITCHES
    },
}


# Packs (cluster.pack > 1): the cells still to do, K at a time per model and seed, each pack
# one job (rules/pack.smk). The packs that ran before stay the makers of their cells (read
# from their files), whatever cluster.pack is now; a cell made alone is its own input.
PACK = config["cluster"]["pack"]
PACKS_DONE = {m: ns_cells.read_packs(STUDY, m) for m in MODELS}
PACKS_TODO = {m: ns_cells.study_packs(m, config["models"][m], PACK, STUDY) for m in MODELS}
PACK_BY_ID = {(p.model, p.id): p for m in MODELS for p in PACKS_DONE[m] + PACKS_TODO[m]}
PACK_RESULT_OF = {
    c: p.result_path(STUDY)
    for m in MODELS
    for p in PACKS_DONE[m]
    for c in p.cells
    if os.path.exists(c.result_path(STUDY))
}
PACK_RESULT_OF.update({c: p.result_path(STUDY) for m in MODELS for p in PACKS_TODO[m] for c in p.cells})
PACK_RUNTIME = per_model({m: pack_runtime_minutes(config, m) for m in MODELS})
ROUND_PACK_RUNTIME = per_model({m: round_pack_runtime_minutes(config, m) for m in MODELS})
PACK_SBATCH_EXTRA = per_model({m: sbatch_extra(config, pack_runtime_minutes(config, m)) for m in MODELS})
ROUND_PACK_SBATCH_EXTRA = per_model(
    {m: sbatch_extra(config, round_pack_runtime_minutes(config, m)) for m in MODELS}
)


def cell_results(wildcards):
    """Every cell's result, or the file of the pack that makes it."""
    if not PACK_RESULT_OF:
        return [c.result_path(STUDY) for c in CELLS[wildcards.model]]
    return list(dict.fromkeys(PACK_RESULT_OF.get(c) or c.result_path(STUDY) for c in CELLS[wildcards.model]))


def pack_of(wildcards):
    return PACK_BY_ID[(wildcards.model, wildcards.pack)]


def pack_members(wildcards):
    return [[c.mean, c.std] for c in pack_of(wildcards).cells]


def pack_member_results(wildcards):
    return [c.result_path(STUDY) for c in pack_of(wildcards).cells]


def pack_member_logs(wildcards):
    return [c.log_path(STUDY) for c in pack_of(wildcards).cells]


def optuna_config(wildcards):
    return config["models"][wildcards.model]["optuna"]


def grid_config(wildcards):
    return model_config(wildcards).get("grid")


def optuna_rounds(model):
    """The sizes of the model's refinement rounds (n_trials asked `batch` at a time)."""
    opt = config["models"][model]["optuna"]
    return refine_rounds(opt["n_trials"], opt["batch"])


def optuna_round_dir(wildcards, round_number=None):
    number = wildcards["round"] if round_number is None else round_number
    return f"{RESULTS}/{wildcards.model}/optuna/round~{number}"


def optuna_previous_round(wildcards):
    """A round starts from the last one's told record (the first from the warm start)."""
    number = int(wildcards["round"])
    if number == 0:
        return f"{RESULTS}/{wildcards.model}/optuna/warmstart.json"
    return f"{optuna_round_dir(wildcards, number - 1)}/told.json"


def optuna_round_size(wildcards):
    return optuna_rounds(wildcards.model)[int(wildcards["round"])]


def optuna_round_cells(wildcards):
    """The round's trial cells (known once its ask checkpoint ran): each cell's result, made by
    train_cell; or, with cluster.pack > 1, the round's pack, which trains them all in one job."""
    asked = checkpoints.optuna_ask.get(model=wildcards.model, round=wildcards["round"]).output[0]
    if PACK > 1:
        return [f"{optuna_round_dir(wildcards)}/pack.json"]
    trials = json.loads(Path(asked).read_text())["trials"]
    cells = {ns_cells.Cell(wildcards.model, t["mean"], t["std"], t["seed"]) for t in trials}
    return sorted(c.result_path(STUDY) for c in cells)


def optuna_last_round(wildcards):
    last = len(optuna_rounds(wildcards.model)) - 1
    return f"{optuna_round_dir(wildcards, last)}/told.json"


OPTUNA_STUDY_KEYS = ("sampler", "seed", "mean", "std", "per_channel", "box")


def optuna_params(wildcards):
    """Where the study lives and how it searches: what every optuna rule needs (not n_trials or
    batch, which only the rounds' sizes depend on: raising n_trials reruns no finished round)."""
    return {
        "journal": f"{RESULTS}/{wildcards.model}/optuna/journal.log",
        "study_name": f"{STUDY}-{wildcards.model}",
        **{k: optuna_config(wildcards)[k] for k in OPTUNA_STUDY_KEYS},
    }


def best_seed_cells(wildcards):
    """The best point retrained with several seeds: ordinary grid-style cells."""
    best = checkpoints.optuna_summary.get(model=wildcards.model).output.best
    point = json.loads(Path(best).read_text())
    return [
        ns_cells.Cell(wildcards.model, point["mean_label"], point["std_label"], seed).result_path(STUDY)
        for seed in optuna_config(wildcards)["retrain_seeds"]
    ]


def check_cluster_request():
    """Before the first job is submitted to SLURM: does every job's request fit the partition
    (CPUs, memory, GPUs and their type per node, MaxTime)? Otherwise stop with the config key
    to change, instead of SLURM refusing each job at submission. Silent where SLURM does not
    answer (scontrol missing or the daemons down)."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name.removeprefix("snakemake-executor-plugin-") != "slurm":
        return
    from normsweep.cluster import check_request, read_partition

    partition = read_partition(config["cluster"]["partition"])
    problems = check_request(config, partition) if partition is not None else []
    if problems:
        raise WorkflowError(
            f"the study's jobs do not fit partition {partition.name}:\n  " + "\n  ".join(problems)
        )


def check_weights_files():
    """Before the first job: every model's pretrained weights are where they are read from
    (torch's cache for a torchvision name, else the file) and have their sha256; otherwise stop
    naming the file to put where. A dry run plans without them."""
    problems = []
    for m in MODELS:
        block = config["models"][m]
        if block.get("weights"):
            try:
                arch = ns_catalog.arch_of(m, block)
                ns_catalog.check_weights(arch, block["weights"], block.get("weights_sha256"))
            except ns_catalog.ArchError as error:
                problems.append(f"config key 'models.{m}.weights': {error}")
    if problems:
        raise WorkflowError("\n".join(problems))


def data_changes():
    """Finished cells that ran on another version of their data than its record holds, and
    ImageFolders changed since they were listed (files added, removed, renamed): what a user is
    told before anything runs, a dry run too (normsweep.provenance)."""
    said = []
    for m in MODELS:
        record = f"{DATA_DIR[m]}/files.json"
        stale = ns_provenance.stale_cells((c.result_path(STUDY) for c in CELLS[m]), record)
        if stale:
            said.append(ns_provenance.describe_stale(m, stale, ns_provenance.record_version(record)))
        if m in IMAGE_MODELS and os.path.exists(record):
            block = config["models"][m]
            listed = json.loads(Path(record).read_text()).get("folder_stamp")
            now = ns_images.folder_stamp(block["data"], ns_config.image_splits(block))
            if listed and listed != now:
                said.append(
                    f"model {m}: {block['data']} changed since it was listed (files added, removed or "
                    "renamed): it is listed again, shards of changed images are prepared again, and "
                    "cells still to do train on the new version; finished cells stay as they are, "
                    "and the tables and scripts/plan.py name those that ran on the former one"
                )
    return said


if workflow.is_main_process:
    for _said in data_changes():
        logger.warning(f"Data changed: {_said}")


onstart:
    check_weights_files()
    check_cluster_request()
