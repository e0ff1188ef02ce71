"""Print what a run will cost before it starts: cells to run and already done, jobs to
submit, and GPU-hours from a measured (or configured) time per epoch. Needs no cluster.

    .venv/bin/python scripts/plan.py                              # the default config
    .venv/bin/python scripts/plan.py --configfile config/full.yaml
    .venv/bin/python scripts/plan.py --configfile config/full.yaml --pack 64   # beside one job per cell

As with snakemake: without --configfile the demo (config/config.yaml) is planned; with it,
the given files (merged in order) replace the demo. Where SLURM answers (scontrol), each job's
request is checked against the partition (CPUs, memory, GPUs and their type per node, MaxTime):
a problem names the config key and a value that fits, and the exit status is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from normsweep.cluster.partition import check_request, read_partition  # noqa: E402
from normsweep.cluster.queue import submit_cap  # noqa: E402
from normsweep.study.cli import load_study, study_parser  # noqa: E402
from normsweep.study.plan import (  # noqa: E402
    data_plans,
    format_data_plans,
    format_plan,
    plan,
    stale_data,
    waves_line,
    weights_line,
)


def main() -> int:
    parser = study_parser(__doc__)
    parser.add_argument(
        "--pack", type=int, default=None, help="cells per pack job (default: the config's cluster.pack)"
    )
    parser.add_argument(
        "--max-jobs",
        type=int,
        default=None,
        help="jobs this user may queue at once (default: sacctmgr's cap)",
    )
    parser.add_argument(
        "--no-cluster", action="store_true", help="do not check the request against SLURM's partition"
    )
    args = parser.parse_args()
    config = load_study(args)
    workdir = Path(args.directory)
    plans = plan(config, workdir, args.pack)
    print(format_plan(plans, config["cluster"]["gpus_per_cell"]))
    jobs = sum(p.pack_jobs if p.pack > 1 else p.jobs for p in plans)
    cap = args.max_jobs or (submit_cap() if not args.no_cluster else None)
    if line := waves_line(jobs, cap):
        print(line)
    if data := format_data_plans(data_plans(config, workdir)):
        print(data)
    for said in stale_data(config, workdir):
        print(f"\ndata changed: {said}")
    for model, block in config["models"].items():
        if (weights := weights_line(model, block)) is not None:
            print(weights)
    partition = read_partition(config["cluster"]["partition"]) if not args.no_cluster else None
    if partition is None:
        return 0
    problems = check_request(config, partition)
    print(f"\ncluster check against partition {partition.name} ({len(partition.nodes)} nodes): "
          + ("every job fits" if not problems else f"{len(problems)} problem(s)"))  # fmt: skip
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
