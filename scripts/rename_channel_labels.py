"""Rename a study's per-channel cells from the comma names of older normsweep versions
(``mean~0.485,0.456,0.406``) to today's (``mean~0.485_0.456_0.406``), once.

Commas in a cell's name fail every per-channel cell on SLURM (Snakemake splits the job's
``--target-jobs`` on commas), so cells are now named with underscores. This moves the
study's result, checkpoint and log files to their new names and updates the labels inside
its JSON files and Optuna journal; nothing is retrained. Run it with the config of the run:

    .venv/bin/python scripts/rename_channel_labels.py --configfile config/resnet.yaml

and then the two snakemake commands it prints (record the renamed cells' params without
training; make the tables again).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from normsweep.core.cells import old_channel_names  # noqa: E402
from normsweep.study.cli import load_study, study_parser  # noqa: E402
from normsweep.study.migrate import rename_old_channel_names  # noqa: E402


def main() -> int:
    parser = study_parser(__doc__)
    parser.add_argument("-n", "--dry-run", action="store_true", help="only list what would be renamed")
    args = parser.parse_args()
    study = load_study(args)["study"]
    if args.dry_run:
        for path in old_channel_names(study, args.directory):
            print(f"would rename {path}")
        return 0
    renamed = rename_old_channel_names(study, args.directory)
    for old, new in renamed:
        print(f"{old} -> {new}")
    print(f"study {study}: {len(renamed)} files and folders renamed")
    if renamed:
        configs = " ".join(f"--configfile {c}" for c in args.configfile)
        print(
            "Now record the finished cells' params without training, then make the tables again:\n"
            f"  snakemake {configs} --touch --forcerun train_cell --cores 1 "
            f"$(find results/{study} -path '*/cells/*.json')\n"
            f"  snakemake {configs}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
