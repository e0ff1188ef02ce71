"""Rule check_data (login node): md5-check the MNIST files, fetching them first when they
are missing and the config allows it; writes the checked sums."""

import _setup

from normsweep import data
from normsweep.results import write_json_atomic

log = _setup.start_logging(snakemake.log)  # noqa: F821
root = snakemake.params.root  # noqa: F821
# read from the config, not a param: allowing a download must not make finished cells stale
download = snakemake.config["models"][snakemake.wildcards.model]["download"]  # noqa: F821
sums = data.ensure_mnist(root, download=download)
log.info("%s: %d files, md5 checked", root, len(sums))
write_json_atomic(snakemake.output[0], {"root": str(root), "md5": sums})  # noqa: F821
