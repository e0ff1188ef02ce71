"""Rule prepare_shard (a CPU job): decode one shard of the listing (RGB, Resize, CenterCrop:
the notebook's pixels) into a .npy file of uint8 pixels and its manifest."""

import json

import _setup
from normsweep import images
from normsweep.data import DataError
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)
split, index = snakemake.wildcards.split, int(snakemake.wildcards.shard)
with open(snakemake.input[0]) as handle:
    listing = json.load(handle)
if listing[split]["shards"][index]["signature"] != snakemake.params.signature:
    raise DataError(f"{snakemake.input[0]}: changed since this job was planned; rerun snakemake")
image = snakemake.params.image
manifest = images.prepare_shard(
    listing["root"], listing, split, index, image["resize"], image["crop"], snakemake.output.pixels,
    image.get("interpolation") or "bilinear",
)  # fmt: skip
write_json_atomic(snakemake.output.manifest, manifest)
log.info("%s shard %d: %d images at %d px, sha256 %s", split, index, manifest["shape"][0], image["crop"],
         manifest["sha256"][:16])  # fmt: skip
