# Packs (cluster.pack > 1): the cells of a model and seed still to do, trained K at a time in
# one process on one device, one job (one GPU) per pack. Each member writes its own cell
# result and log, exactly as a cell trained alone; the pack's file lists them.


include: "inputs/pack.smk"


rule train_pack:
    input:
        stats=CELL_DATA_STATS,
    output:
        f"{RESULTS}/{ns_cells.PACK_RESULT}",
    log:
        f"{LOGS}/{ns_cells.PACK_LOG}",
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        **JOB_RESOURCES,
        **TRAIN_EXECUTION,
        runtime=PACK_RUNTIME,
        slurm_extra=PACK_SBATCH_EXTRA,
    params:
        cell=TRAINING_PARAMS,
        members=pack_members,
        results=pack_member_results,
        logs=pack_member_logs,
        checkpoint=f"{RESULTS}/{ns_cells.PACK_CHECKPOINT}",
    script:
        "../scripts/train_pack.py"
