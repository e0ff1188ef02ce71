# One job per (model, mean, std, seed) cell.


rule train_cell:
    input:
        stats=f"{RESULTS}/{{model}}/data/stats.json",
    output:
        f"{RESULTS}/{ns_cells.CELL_RESULT}",
    log:
        f"{LOGS}/{ns_cells.CELL_LOG}",
    params:
        cell=TRAINING_PARAMS,
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        # sized from the config's `cluster` block (see config/README.md); used by profiles/slurm
        runtime=RUNTIME,
        mem_mb=CLUSTER["mem_mb"],
        gpu=CLUSTER["gpu"],
        gpu_model=CLUSTER["gpu_model"],
        cpus_per_gpu=CLUSTER["cpus_per_gpu"],
        slurm_partition=CLUSTER["slurm_partition"],
        slurm_account=CLUSTER["slurm_account"],
    script:
        "../../scripts/train_cell.py"
