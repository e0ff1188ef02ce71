# Sourced by start.sh, stop.sh and the tests: where the test cluster keeps its files.
NORMSWEEP_SLURM_DIR=${NORMSWEEP_SLURM_DIR:-/tmp/normsweep-slurm}
export SLURM_CONF="$NORMSWEEP_SLURM_DIR/etc/slurm.conf"
NORMSWEEP_SLURM_PARTITION=${NORMSWEEP_SLURM_PARTITION:-testgpu}
NORMSWEEP_SLURM_URGENT_PARTITION=${NORMSWEEP_SLURM_URGENT_PARTITION:-urgent}  # preempts the one above
NORMSWEEP_SLURM_GPU_MODEL=${NORMSWEEP_SLURM_GPU_MODEL:-fakegpu}
NORMSWEEP_SLURM_NODE=${NORMSWEEP_SLURM_NODE:-normsweep-node}
