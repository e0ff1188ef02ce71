# `snakemake fold`: does folding each cell's normalization into conv1 give the same network?


include: "inputs/fold.smk"


rule fold:
    input:
        expand(f"{RESULTS}/{{model}}/fold/check.json", model=MODELS),
    localrule: True


rule fold_check:
    input:
        stats=data_stats,
    output:
        f"{RESULTS}/{{model}}/fold/check.json",
    log:
        f"{LOGS}/{{model}}/fold.log",
    conda:
        "../../envs/train.yaml"
    params:
        cell=TRAINING_PARAMS,
        cells=fold_cells,
    script:
        "../scripts/fold_check.py"
