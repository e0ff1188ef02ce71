#!/usr/bin/env bash
# Install a single-node SLURM for tests: Debian's slurm-wlm daemons, munge, and slurmdbd with
# MariaDB, so that accounting (sacct) works as on a university cluster.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null \
   && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    echo "slurm, slurmdbd, mariadb and munge are installed"
    exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server >/dev/null
echo "installed: $(slurmctld -V), $(munged --version 2>&1 | head -1), $(mariadbd --version)"
