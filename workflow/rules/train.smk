# One job per (model, mean, std, seed) cell.


rule train_cell:
    input:
        stats=CELL_DATA_STATS,
    output:
        f"{RESULTS}/{ns_cells.CELL_RESULT}",
    log:
        f"{LOGS}/{ns_cells.CELL_LOG}",
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        **CLUSTER,
        # sized from the config's `cluster` block (see config/README.md); used by profiles/slurm:
        # mem_mb, gpu, gpu_model, cpus_per_gpu, slurm_partition, slurm_account
        **TRAIN_EXECUTION,
        runtime=RUNTIME,
        slurm_extra=SBATCH_EXTRA,
    params:
        cell=TRAINING_PARAMS,
    script:
        "../../scripts/rules/train_cell.py"
