"""Rule prepare_shard (a CPU job): one shard of an ImageFolder in the data cache (RGB, Resize,
CenterCrop: the notebook's pixels, as a .npy file of uint8 pixels and its manifest), reused
when another study or model made it already (normsweep.data.cache). A bad image ends the job with
one line naming the file and the fix, no traceback."""

import sys

import _setup
from normsweep.core.errors import DataError
from normsweep.data.cache import provide_shard

log = _setup.start_logging(snakemake.log)
w = snakemake.wildcards
try:
    manifest, how = provide_shard(
        snakemake.input, w.split, int(w.shard), w.signature, snakemake.params.image,
        snakemake.output.pixels, snakemake.output.manifest,
    )  # fmt: skip
except DataError as error:
    log.error("%s", error)
    sys.exit(1)
log.info("%s shard %s: %d images at %d px, sha256 %s, %s", w.split, w.shard, manifest["shape"][0],
         manifest["shape"][-1], manifest["sha256"][:16], how)  # fmt: skip
