"""Rule download_mnist (login node): fetch MNIST where it is missing, md5-checked."""

import _setup

from normsweep import data

log = _setup.start_logging(snakemake.log)  # noqa: F821
for root in snakemake.params.roots:  # noqa: F821
    log.info("fetching MNIST into %s", root)
    data.download_mnist(root)
