"""Rule study_config: the configuration the study ran with, defaults filled in, for the report."""

import yaml

import _setup
from normsweep.core.results import write_text_atomic

_setup.start_logging(snakemake.log)
write_text_atomic(snakemake.output[0], yaml.safe_dump(dict(snakemake.params.config), sort_keys=False))
