"""Rule check_data (login node): check the data set, fetching MNIST first when it is
missing and params.data allows it; an ImageFolder is decoded once into tensor caches here."""

from pathlib import Path

import _setup
from normsweep import data, images
from normsweep.catalog import model_info
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)
model = snakemake.wildcards.model
settings = snakemake.params.data
root = settings["root"]
if model_info(model).dataset == "mnist":
    sums = data.ensure_mnist(root, download=settings["download"])
    log.info("%s: %d files, md5 checked", root, len(sums))
    record = {"root": str(root), "md5": sums}
else:
    image = settings["image"]
    record = {**images.describe(root), "image": image}
    for split in images.SPLITS:
        split_data = images.load_cached(
            root, split, image["resize"], image["crop"], Path(snakemake.output[0]).parent
        )
        log.info(
            "%s/%s: %d images, %d classes, cached as tensors at %d px",
            root,
            split,
            len(split_data.labels),
            len(split_data.classes),
            image["crop"],
        )
write_json_atomic(snakemake.output[0], record)
