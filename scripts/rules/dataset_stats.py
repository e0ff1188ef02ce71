"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64), per
channel, of the images as the network sees them; an ImageFolder's from its shards' histograms."""

import _setup
from normsweep import data, images
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)
root = snakemake.params.data["root"]
if snakemake.params.data["image"] is None:  # MNIST (a 1-channel network)
    stats = data.exact_stats(data.load_mnist(root, train=True).images)
    split = "train"
else:
    manifests = [images.read_manifest(p) for p in snakemake.input.shards]
    stats = data.DatasetStats(*images.histogram_stats(manifests))
    split = manifests[0]["split"]  # val: an evaluation-only study, whose cells use no statistics
log.info("%s: %d %s images, mean %s, std %s", root, stats.n_images, split, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root), "split": split})
