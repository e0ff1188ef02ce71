# The constants and input functions of rules/data.smk.


# Each model's data check, statistics and image caches live in results/<study>/<model>/data/<key>/,
# the key a hash of the data folder and image size: a new folder or size gives new files,
# which every cell sees (see ns_cells.data_key).
DATA_DIR = {
    m: f"{RESULTS}/{m}/data/{ns_cells.data_key(config['models'][m], m in IMAGE_MODELS)}" for m in MODELS
}
# The prepared shards themselves live in the data cache, one copy per folder and preprocessing
# (the data key), shared by every model and study that asks for it (normsweep.data.cache).
DATA_CACHE = config["data_cache"]
MODELS_OF_KEY = {}
for _m in IMAGE_MODELS:
    MODELS_OF_KEY.setdefault(ns_cells.data_key(config["models"][_m], True), []).append(_m)


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
    image = config["models"][MODELS_OF_KEY[wildcards.datakey][0]]["image"]
    return {k: image[k] for k in ("resize", "crop", "interpolation") if k in image}


def folder_stamp(wildcards):
    """The ImageFolder's split and class folders' times (cheap: no file is listed); MNIST: none."""
    if wildcards.model not in IMAGE_MODELS:
        return None
    block = model_config(wildcards)
    return ns_prepare.folder_stamp(block["data"], ns_config.image_splits(block))


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


def shard_manifests(wildcards, splits=ns_prepare.SPLITS, pixels=False):
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
        ancient(f"{RESULTS}/{m}/data/{wildcards.datakey}/listing.json")
        for m in MODELS_OF_KEY[wildcards.datakey]
    ]


# A prepare job holds one image at a time (plus torch and PIL): its memory does not grow with
# the shard; its time does (about 0.1 s per full-size JPEG, measured 0.01-0.04 s here).
PREPARE_MEM_MB = 2000


def prepare_runtime(wildcards):
    size = max(config["models"][m]["image"]["shard_size"] for m in MODELS_OF_KEY[wildcards.datakey])
    return 10 + (size + 599) // 600


def data_changes():
    """Finished cells that ran on another version of their data than its record holds, and
    ImageFolders changed since they were listed (files added, removed, renamed): what a user is
    told before anything runs, a dry run too (normsweep.core.provenance)."""
    said = []
    for m in MODELS:
        record = f"{DATA_DIR[m]}/files.json"
        stale = ns_provenance.stale_cells((c.result_path(STUDY) for c in CELLS[m]), record)
        if stale:
            said.append(ns_provenance.describe_stale(m, stale, ns_provenance.record_version(record)))
        if m in IMAGE_MODELS and os.path.exists(record):
            block = config["models"][m]
            listed = json.loads(Path(record).read_text()).get("folder_stamp")
            now = ns_prepare.folder_stamp(block["data"], ns_config.image_splits(block))
            if listed and listed != now:
                said.append(
                    f"model {m}: {block['data']} changed since it was listed (files added, removed or "
                    "renamed): it is listed again, shards of changed images are prepared again, and "
                    "cells still to do train on the new version; finished cells stay as they are, "
                    "and the tables and scripts/plan.py name those that ran on the former one"
                )
    return said
