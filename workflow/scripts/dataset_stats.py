"""Rule dataset_stats: the exact mean and std of the training set (all pixels, float64), per
channel, of the images as the network sees them; an ImageFolder's from its shards' histograms."""

import _setup
from normsweep.core.results import write_json_atomic
from normsweep.data import mnist, prepare

log = _setup.start_logging(snakemake.log)
root = snakemake.params.data["root"]
if snakemake.params.data["image"] is None:  # MNIST (a 1-channel network)
    stats = mnist.exact_stats(mnist.read_split(root, train=True)[0])
    split = "train"
else:
    manifests = [prepare.read_manifest(p) for p in snakemake.input.shards]
    stats = mnist.DatasetStats(*prepare.histogram_stats(manifests))
    split = manifests[0]["split"]  # val: an evaluation-only study, whose cells use no statistics
log.info("%s: %d %s images, mean %s, std %s", root, stats.n_images, split, stats.mean, stats.std)
write_json_atomic(snakemake.output[0], {**stats.to_dict(), "root": str(root), "split": split})
