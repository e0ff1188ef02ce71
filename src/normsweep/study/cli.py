"""What the project's command-line scripts share: which study they read (the same
``--configfile`` / ``--directory`` as snakemake's) and how a bad config is reported."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from normsweep.study.config import ConfigError, study_config


def study_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the study's options; a script adds its own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        help="config files (replace the demo), as for snakemake",
    )
    parser.add_argument("--directory", default=".", help="the working directory of the run (default: here)")
    return parser


def load_study(args: argparse.Namespace) -> dict[str, Any]:
    """The config the run with these options uses (the demo without --configfile); a config
    error is printed as one line naming the key, and the script exits with status 1."""
    try:
        return study_config(args.configfile, args.directory)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
