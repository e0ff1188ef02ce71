"""Measure one large study end to end on a SLURM cluster under a cap on queued jobs:

    export SLURM_CONF=/tmp/normsweep-slurm/etc/slurm.conf       # the test SLURM (scripts/slurm/)
    .venv/bin/python scripts/bench/cluster.py --side 45 --pack 32 --cap 5

Sets the cap with sacctmgr on your own association (MaxSubmitJobs; put back to none after),
installs the profile under a temporary XDG_CONFIG_HOME (install_profile.py reads the cap),
prints plan.py's waves, then runs `snakemake --profile slurm` on a side x side LeNet grid of
tiny cells. Every sbatch, sacct, squeue and scontrol call of the run goes through a counting
wrapper on PATH (the real binaries do the work), counted apart on the login node and in jobs. Prints: wall time, cells written, jobs,
the most jobs queued at once, refused submissions, calls per minute of each command, and the
login node's CPU (the snakemake process and its children, the jobs themselves run on the node).
Needs root or an operator's right on sacctmgr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COUNTED = ("sbatch", "sacct", "squeue", "scontrol")


def wrappers(folder: Path, log: Path) -> None:
    """A counting wrapper per command: one line per call (with the job it ran in, or `login`),
    then the real binary."""
    folder.mkdir(parents=True)
    for name in COUNTED:
        real = shutil.which(name)
        assert real, f"{name} is not on PATH: is SLURM installed?"
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} ${{SLURM_JOB_ID:-login}}" >> {log}\nexec {real} "$@"\n')
        script.chmod(0o755)


def study(side: int, pack: int, data: Path, name: str) -> dict:
    return {
        "study": name,
        "cluster": {"cpus_per_gpu": 1, "mem_mb": 1000, "seconds_per_epoch": 60, "pack": pack},
        "models": {
            "lenet": {
                "data": str(data),
                "grid": {"mean": {"start": -2, "stop": 3, "num": side}, "std": {"start": 0.02, "stop": 2, "num": side}},
                "references": {},
                "seeds": [1998],
                "training": {"epochs": 1, "train_subset": 64, "test_subset": 64, "threads": 1},
            }
        },
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=45, help="grid side: side x side cells (45: 2,025)")
    parser.add_argument("--pack", type=int, default=32, help="cells per job (cluster.pack)")
    parser.add_argument("--cap", type=int, default=5, help="MaxSubmitJobs set on your association")
    parser.add_argument("--partition", default=os.environ.get("NORMSWEEP_SLURM_PARTITION", "testgpu"))
    parser.add_argument("--gpu-model", default=os.environ.get("NORMSWEEP_SLURM_GPU_MODEL", "fakegpu"))
    parser.add_argument("--status-seconds", type=int, default=30, help="seconds between the plugin's checks")
    parser.add_argument("--data", type=Path, default=ROOT / "data/mnist-small")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="normsweep-bench-cluster-"))
    work, home, calls = tmp / "work", tmp / "xdg", tmp / "calls.log"
    wrappers(tmp / "bin", calls)
    (work / "config").mkdir(parents=True)
    cfg = study(args.side, args.pack, args.data, "bench-cluster")
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "XDG_CONFIG_HOME": str(home), "PATH": f"{tmp / 'bin'}:{BIN}:{os.environ['PATH']}"}
    for key in ("NORMSWEEP_SLURM_PARTITION", "NORMSWEEP_SLURM_GPU_MODEL"):
        env.pop(key, None)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    cap = ["sacctmgr", "-i", "modify", "user", user, "set"]
    subprocess.run([*cap, f"MaxSubmitJobs={args.cap}"], check=True, capture_output=True)
    try:
        py = str(BIN / "python")
        install = [py, str(ROOT / "scripts/install_profile.py"), "--partition", args.partition,
                   "--gpu-model", args.gpu_model]  # fmt: skip
        print(subprocess.run(install, env=env, capture_output=True, text=True, check=True).stdout.strip())
        plan = subprocess.run([py, str(ROOT / "scripts/plan.py"), "--directory", str(work)], cwd=work, env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        print(plan.stdout.strip())
        calls.write_text("")
        command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--profile", "slurm",
                   "--directory", str(work), "--seconds-between-status-checks", str(args.status_seconds)]  # fmt: skip
        queued: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
                queued.append(len(out.split()))
                time.sleep(1)

        sampler = threading.Thread(target=sample, daemon=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        sampler.start()
        run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        done.set()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = [line.split() for line in calls.read_text().splitlines() if line.strip()]
        counts = {name: sum(1 for n, where in lines if n == name and where == "login") for name in COUNTED}
        in_jobs = {name: sum(1 for n, where in lines if n == name and where != "login") for name in COUNTED}
        cells = len(list((work / "results/bench-cluster/lenet/cells").rglob("seed~*.json")))
        status_start = time.monotonic()
        status = subprocess.run([py, str(ROOT / "scripts/status.py"), "--directory", str(work), "--no-figure"],
                                cwd=work, env=env, capture_output=True, text=True)  # fmt: skip
        figures = {
            "cells": args.side**2, "pack": args.pack, "cap": args.cap, "rc": run.returncode,
            "results_written": cells, "wall_s": round(wall, 1), "login_cpu_s": round(cpu, 1),
            "most_queued": max(queued, default=0), "refused": run.stderr.count("MaxSubmitJob"),
            "login_calls": counts, "calls_in_jobs": in_jobs, "login_calls_per_minute": {k: round(v / wall * 60, 1) for k, v in counts.items()},
            "status_py_s": round(time.monotonic() - status_start, 2), "status_py_rc": status.returncode,
        }  # fmt: skip
        print(json.dumps(figures, indent=1))
        if run.returncode:
            print(run.stderr[-3000:], file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1) + "\n")
        return run.returncode
    finally:
        subprocess.run([*cap, "MaxSubmitJobs=-1"], check=True, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
