"""Rule dataset_stats: check the MNIST files' md5 and compute the exact training-set statistics."""

import _setup

from normsweep import data
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
root = snakemake.params.root  # noqa: F821
sums = data.verify_mnist(root)
train = data.load_mnist(root, train=True)
stats = data.exact_stats(train.images)
log.info("%s: md5 checked; %d training images, mean %s, std %s", root, stats.n_images, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root), "md5": sums})  # noqa: F821
