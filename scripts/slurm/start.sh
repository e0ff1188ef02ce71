#!/usr/bin/env bash
# Start a single-node SLURM with two fake GPUs and slurmdbd accounting, for tests.
#   bash scripts/slurm/start.sh    then   export SLURM_CONF=/tmp/normsweep-slurm/etc/slurm.conf
# Everything lives under $NORMSWEEP_SLURM_DIR (default /tmp/normsweep-slurm); /etc/slurm only
# gets links to it (job steps started inside a job look there, whatever SLURM_CONF says),
# and never when a real slurm.conf is there. stop.sh ends exactly the daemons started here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
D=$NORMSWEEP_SLURM_DIR
bash "$here/stop.sh" >/dev/null 2>&1 || true
rm -rf "$D"
mkdir -p "$D"/{etc,ctld,spool,log,run,mysql-run}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq 1 $((limit * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out after ${limit}s waiting for $what" >&2
    tail -n 30 "$D"/log/*.log >&2 || true
    return 1
}

# munge: the key made by Debian's package, on its default socket (clients look there)
install -d -o munge -g munge -m 0755 /run/munge "$D/munge"
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --force
fi
wait_for 10 munged munge -n

# MariaDB for slurmdbd, in its own data folder and socket
chown mysql:mysql "$D/mysql-run"
mariadb-install-db --user=mysql --datadir="$D/mysql" --auth-root-authentication-method=socket \
    >"$D/log/mariadb-install.log" 2>&1
mariadbd --user=mysql --datadir="$D/mysql" --socket="$D/mysql-run/mysqld.sock" \
    --pid-file="$D/mysql-run/mysqld.pid" --bind-address=127.0.0.1 --port=3307 \
    --skip-name-resolve --log-error="$D/mysql-run/mariadb.log" </dev/null >/dev/null 2>&1 &
wait_for 30 mariadb mariadb --socket="$D/mysql-run/mysqld.sock" -e "select 1"
mariadb --socket="$D/mysql-run/mysqld.sock" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'normsweep-test';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'normsweep-test';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

cpus=$(nproc)
mem=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 1024 ))
node=$NORMSWEEP_SLURM_NODE
for i in 0 1; do ln -sfn /dev/null "$D/run/gpu$i"; done

cat > "$D/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=normsweep-test
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
CONF
chmod 600 "$D/etc/slurmdbd.conf"

cat > "$D/etc/slurm.conf" <<CONF
# normsweep's test cluster: one node, two fake GPUs ($NORMSWEEP_SLURM_GPU_MODEL)
ClusterName=normsweep
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
DefMemPerCPU=1000
ReturnToService=2
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$NORMSWEEP_SLURM_GPU_MODEL:2 State=UNKNOWN
# as a university cluster: a time limit on the partition, checked at submission; jobs that a
# higher-tier partition's job preempts (SIGCONT+SIGTERM, GraceTime seconds, then SIGKILL) and
# requeues; per-user caps from the accounting database (sacctmgr) enforced
EnforcePartLimits=ALL
AccountingStorageEnforce=associations,limits
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
PartitionName=$NORMSWEEP_SLURM_PARTITION Nodes=$node Default=YES MaxTime=120 PriorityTier=1 GraceTime=30 State=UP
PartitionName=$NORMSWEEP_SLURM_URGENT_PARTITION Nodes=$node MaxTime=120 PriorityTier=10 PreemptMode=OFF State=UP
CONF
cat > "$D/etc/gres.conf" <<CONF
AutoDetect=off
Name=gpu Type=$NORMSWEEP_SLURM_GPU_MODEL File=$D/run/gpu[0-1]
CONF

# job steps (srun inside a job) read /etc/slurm: link our files there, never over a real one
for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" != "$D/etc/$f" ]; then
        echo "/etc/slurm/$f exists and is not this test cluster's: refusing to replace it" >&2
        exit 1
    fi
    mkdir -p /etc/slurm && ln -sfn "$D/etc/$f" "/etc/slurm/$f"
done

slurmdbd
wait_for 30 slurmdbd sacctmgr -i list cluster
sacctmgr -i add cluster normsweep >/dev/null 2>&1 || true
slurmctld -c
slurmd -N "$node"
wait_for 60 "node $node idle" bash -c "sinfo -h -n $node -o %t | grep -qx idle"
wait_for 30 sacct sacct -n -X
echo "SLURM up: node $node, partition $NORMSWEEP_SLURM_PARTITION (preemptable by $NORMSWEEP_SLURM_URGENT_PARTITION), 2 x gpu:$NORMSWEEP_SLURM_GPU_MODEL"
echo "export SLURM_CONF=$SLURM_CONF"
