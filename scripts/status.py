"""A study's state while snakemake runs, from its files and, on a cluster, from SLURM (no lock,
no torch):

    .venv/bin/python scripts/status.py                                   # the demo
    .venv/bin/python scripts/status.py --configfile config/full.yaml --profile slurm
    .venv/bin/python scripts/status.py --watch 60                        # refresh every minute
    .venv/bin/python scripts/status.py --json                            # for scripts

Per model (the grid, the references, the refinement's trial cells and retrained seeds): cells
done, running (a checkpoint or a log without a result), failed (the log ends in an error),
diverged and pending; with SLURM (squeue on PATH; one squeue and one sacct call per refresh)
also queued (with SLURM's reason), running (node, elapsed), failed / timeout / out of memory /
cancelled (with the SLURM log) and lost (its files say running, no job holds it); the last
finished epoch of running cells; an estimate of the time left; the refinement's rounds; failed
and lost cells with the command that reruns them. Draws results/<study>/plots/progress.png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from normsweep.cluster.queue import query_jobs  # noqa: E402
from normsweep.core import cells  # noqa: E402
from normsweep.monitoring.report import format_status, progress_figure  # noqa: E402
from normsweep.monitoring.status import study_status  # noqa: E402
from normsweep.study.cli import load_study, study_parser  # noqa: E402


def main() -> int:
    parser = study_parser(__doc__)
    parser.add_argument("--profile", default="profiles/local", help="the profile of the rerun command shown")
    parser.add_argument(
        "--watch", type=float, metavar="SECONDS", help="print again every SECONDS, until Ctrl-C"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--no-figure", action="store_true", help="do not draw progress.png")
    parser.add_argument(
        "--scheduler",
        choices=("auto", "no"),
        default="auto",
        help="auto: ask SLURM (squeue, sacct) when squeue is on PATH; no: the study's files only",
    )
    args = parser.parse_args()
    config = load_study(args)
    rerun = f"snakemake --profile {args.profile}" + "".join(f" --configfile {c}" for c in args.configfile)
    figure = Path(args.directory) / cells.results_dir(config["study"]) / "plots" / "progress.png"
    while True:
        jobs = query_jobs(args.directory) if args.scheduler == "auto" else None
        status = study_status(config, args.directory, jobs)
        if status["started"] and not args.no_figure:
            progress_figure(status, figure)
            status["figure"] = str(figure)
        if args.json:
            print(json.dumps({**status, "models": {m: {k: v for k, v in e.items() if k != "_states"}
                                                   for m, e in status["models"].items()}}, indent=2))  # fmt: skip
        else:
            print(format_status(status, rerun) + (f"\nfigure: {figure}" if "figure" in status else ""))
        if not args.watch:
            return 0
        sys.stdout.flush()
        time.sleep(args.watch)
        print()


if __name__ == "__main__":
    sys.exit(main())
