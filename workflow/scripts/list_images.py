"""Rule list_images (login node): list an ImageFolder once, both splits (val/ alone when
nothing trains), in ImageFolder's order, with each file's size and time, cut into shards of
``image.shard_size`` images."""

import sys

import _setup
from normsweep.core.errors import DataError
from normsweep.core.results import write_json_atomic
from normsweep.data import prepare

log = _setup.start_logging(snakemake.log)
settings = snakemake.params.data
try:
    listing = prepare.list_folder(
        settings["root"], settings["image"]["shard_size"], settings.get("splits", prepare.SPLITS)
    )
except DataError as error:  # a missing split, an empty class folder, a flat val/ without labels
    log.error("%s", error)
    sys.exit(1)
for split in prepare.listed_splits(listing):
    part = listing[split]
    log.info("%s/%s: %d images of %d classes, %d shards", settings["root"], split, len(part["files"]),
             len(part["classes"]), len(part["shards"]))  # fmt: skip
listing["folder_stamp"] = snakemake.params.folder  # what the folder looked like when listed
write_json_atomic(snakemake.output[0], listing)
