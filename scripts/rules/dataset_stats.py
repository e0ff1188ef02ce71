"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64), per
channel, of the images as the network sees them; an ImageFolder's from its shards' histograms."""

import _setup
from normsweep import data, images
from normsweep.catalog import model_info
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)
root = snakemake.params.data["root"]
if model_info(snakemake.wildcards.model).dataset == "mnist":
    stats = data.exact_stats(data.load_mnist(root, train=True).images)
else:
    stats = data.DatasetStats(
        *images.histogram_stats([images.read_manifest(p) for p in snakemake.input.shards])
    )
log.info("%s: %d training images, mean %s, std %s", root, stats.n_images, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root)})
