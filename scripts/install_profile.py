"""Install the project's SLURM profile under the name cluster users type, with your site's
settings in your copy, not in the repository:

    .venv/bin/python scripts/install_profile.py --partition gpu --account my-lab --gpu-model a100
    snakemake --profile slurm ...          # from then on, in this project's folder

Writes $XDG_CONFIG_HOME/snakemake/slurm/config.yaml (default ~/.config/snakemake/slurm/),
where snakemake looks a profile's plain name up: profiles/slurm/config.yaml with the site
settings added as default resources (the config's `cluster` keys, when set, still win).
Rerun it after updating normsweep; an existing profile that differs is kept unless --force.
`--profile profiles/slurm` goes on working without installing anything.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from normsweep.cluster.queue import submit_cap  # noqa: E402

SOURCE = ROOT / "profiles" / "slurm" / "config.yaml"


def profile_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "snakemake"


def render(partition: str, account: str, gpu_model: str, max_jobs: int | None = None) -> str:
    profile = yaml.safe_load(SOURCE.read_text())
    if max_jobs:  # the cluster's cap on queued jobs: snakemake never submits more at once
        profile["jobs"] = min(int(profile.get("jobs", max_jobs)), max_jobs)
    resources = dict(profile.get("default-resources") or {})
    for key, value in (("slurm_partition", partition), ("slurm_account", account), ("gpu_model", gpu_model)):
        if value:
            resources[key] = value
    profile["default-resources"] = resources
    header = (
        f"# normsweep's SLURM profile, installed by scripts/install_profile.py from\n"
        f"# {SOURCE}\n"
        f"# with this site's settings as default resources. Rerun that script after an update.\n"
    )
    return header + yaml.safe_dump(profile, sort_keys=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="slurm", help="the profile's name (default: slurm)")
    parser.add_argument("--partition", default="", help="SLURM partition of the GPU jobs")
    parser.add_argument("--account", default="", help="SLURM account to charge")
    parser.add_argument("--gpu-model", default="", help="GPU model as your site names it (e.g. a100)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="jobs you may queue at once (MaxSubmitJobs; default: read with sacctmgr, where it answers)")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an existing profile that differs")
    args = parser.parse_args()
    target = profile_home() / args.name / "config.yaml"
    cap = args.max_jobs or submit_cap()
    if cap:
        print(f"at most {cap} jobs at once (the profile's jobs)")
    text = render(args.partition, args.account, args.gpu_model, cap)
    if target.exists() and target.read_text() != text and not args.force:
        print(f"{target} exists and differs; keeping it (add --force to replace it)", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"installed {target}: now `snakemake --profile {args.name}` works in {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
