"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64), per
channel, of the images as the network sees them."""

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
    stats = data.exact_stats(data.load_mnist(root, train=True).images)
else:
    image = settings["image"]
    train = images.read_cache(Path(snakemake.output[0]).parent, "train", image["resize"], image["crop"])
    stats = data.exact_stats(train.images, channel_dim=1)
log.info("%s: %d training images, mean %s, std %s", root, stats.n_images, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root)})
