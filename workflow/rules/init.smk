# The notebook's init study: conv1's initial weights and biases scaled by factors at one
# (mean, std). `snakemake init` runs it for every model with an `init_study` block.


include: "inputs/init.smk"


rule init:
    input:
        expand(f"{RESULTS}/{{model}}/init/heatmap.png", model=INIT_MODELS),
    localrule: True


rule train_init_cell:
    input:
        stats=CELL_DATA_STATS,
    output:
        f"{RESULTS}/{ns_cells.INIT_RESULT}",
    log:
        f"{LOGS}/{ns_cells.INIT_LOG}",
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        **JOB_RESOURCES,
        **TRAIN_EXECUTION,
        runtime=RUNTIME,
        slurm_extra=SBATCH_EXTRA,
    params:
        cell=TRAINING_PARAMS,
        init_study=lookup(dpath="models/{model}/init_study", within=config),
        checkpoint=f"{RESULTS}/{ns_cells.INIT_CHECKPOINT}",
    script:
        "../scripts/train_init_cell.py"


rule init_table:
    input:
        init_results,
    output:
        table=f"{RESULTS}/{{model}}/init/table.csv",
        heatmap=report(
            f"{RESULTS}/{{model}}/init/heatmap.png",
            caption="../report/init.rst",
            category="Init study",
        ),
    log:
        f"{LOGS}/{{model}}/init_table.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/init_table.py"
