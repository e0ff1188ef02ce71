#!/usr/bin/env bash
# Stop the test cluster started by start.sh, in reverse order, by PID file: only its daemons.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
D=$NORMSWEEP_SLURM_DIR
stop_pid() {  # stop_pid NAME PIDFILE
    local pidfile=$2
    [ -f "$pidfile" ] || return 0
    local pid; pid=$(cat "$pidfile" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        echo "stopped $1 ($pid)"
    fi
    rm -f "$pidfile"
}
stop_pid slurmd "$D/run/slurmd.pid"
stop_pid slurmctld "$D/run/slurmctld.pid"
stop_pid slurmdbd "$D/run/slurmdbd.pid"
stop_pid mariadb "$D/mysql-run/mysqld.pid"
stop_pid munged "$D/munge/munged.pid"
for f in slurm.conf gres.conf; do  # the links start.sh made, nothing else
    [ "$(readlink "/etc/slurm/$f" 2>/dev/null)" = "$D/etc/$f" ] && rm -f "/etc/slurm/$f"
done
exit 0
