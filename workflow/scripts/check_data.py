"""Rule check_data (login node): MNIST's files checked (md5), fetched first when missing and
params.data allows it; an ImageFolder's record of its prepared shards (from the listing and the
shards' manifests), which the cells read."""

import json
import os

import _setup
from normsweep.core import provenance
from normsweep.core.results import write_json_atomic
from normsweep.data import cache, mnist, prepare

log = _setup.start_logging(snakemake.log)
settings = snakemake.params.data
root = settings["root"]
if settings["image"] is None:  # MNIST (a 1-channel network)
    sums = mnist.ensure_mnist(root, download=settings["download"])
    log.info("%s: %d files, md5 checked", root, len(sums))
    record = {"root": str(root), "md5": sums}
else:
    listing_file, *shard_files = snakemake.input
    # each manifest read once (the inputs hold their .npy pixel files too)
    manifests = {f: prepare.read_manifest(f) for f in shard_files if f.endswith(".json")}
    with open(listing_file) as handle:
        listing = json.load(handle)
    signatures = {(m["split"], m["index"]): m["signature"] for m in manifests.values()}
    for split in prepare.listed_splits(listing):
        for index, shard in enumerate(listing[split]["shards"]):
            if signatures[(split, index)] != shard["signature"]:
                raise mnist.DataError(f"{split} shard {index}: prepared from other images; rerun snakemake")
        log.info("%s/%s: %d images, %d classes, %d shards", root, split, len(listing[split]["files"]),
                 len(listing[split]["classes"]), len(listing[split]["shards"]))  # fmt: skip
    # the shards' manifests in the data cache, by absolute path (a job's folder may differ)
    by_split = {split: [os.path.abspath(f) for f, m in manifests.items() if m["split"] == split]
                for split in prepare.listed_splits(listing)}  # fmt: skip
    record = prepare.data_record(root, settings["image"], listing, by_split)
    record["folder_stamp"] = listing.get("folder_stamp")  # the folder as it was listed
    # shards the record before this one named that were prepared again since it was written
    # (deleted from the cache by hand); rules/common.smk: missing_shards keeps its param stable
    record["repaired"] = cache.repaired_shards(snakemake.output[0])
    if record["repaired"]:
        log.info(
            "prepared again after they went missing from the data cache: %s", ", ".join(record["repaired"])
        )
# the version of what the cells see (not of the path): recorded in every result and checkpoint
record["version"] = provenance.content_version(record)
log.info("data version %s", record["version"])
write_json_atomic(snakemake.output[0], record)
