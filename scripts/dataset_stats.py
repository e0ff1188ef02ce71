"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64)."""

import _setup

from normsweep import data
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
root = snakemake.params.root  # noqa: F821
stats = data.exact_stats(data.load_mnist(root, train=True).images)
log.info("%s: %d training images, mean %s, std %s", root, stats.n_images, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root)})  # noqa: F821
