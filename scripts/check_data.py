"""Rule check_data (login node): check the data set, fetching MNIST first when it is
missing and the config allows it; an ImageFolder is decoded once into tensor caches here."""

import _setup

from pathlib import Path

from normsweep import data, images
from normsweep.catalog import model_info
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
model = snakemake.wildcards.model  # noqa: F821
block = snakemake.config["models"][model]  # noqa: F821
root = snakemake.params.root  # noqa: F821
if model_info(model).dataset == "mnist":
    # read from the config, not a param: allowing a download must not make finished cells stale
    sums = data.ensure_mnist(root, download=block["download"])
    log.info("%s: %d files, md5 checked", root, len(sums))
    record = {"root": str(root), "md5": sums}
else:
    record = images.describe(root)
    for split in images.SPLITS:
        split_data = images.load_cached(root, split, block["image"]["resize"], block["image"]["crop"],
                                        Path(snakemake.output[0]).parent)  # noqa: F821
        log.info("%s/%s: %d images, %d classes, cached as tensors", root, split, len(split_data.labels),
                 len(split_data.classes))
write_json_atomic(snakemake.output[0], record)  # noqa: F821
