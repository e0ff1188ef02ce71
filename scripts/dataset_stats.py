"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64), per
channel, of the images as the network sees them."""

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
    stats = data.exact_stats(data.load_mnist(root, train=True).images)
else:
    train = images.load_cached(root, "train", block["image"]["resize"], block["image"]["crop"],
                               Path(snakemake.output[0]).parent)  # noqa: F821
    stats = data.exact_stats(train.images, channel_dim=1)
log.info("%s: %d training images, mean %s, std %s", root, stats.n_images, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root)})  # noqa: F821
