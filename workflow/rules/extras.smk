# Optional targets beyond the grid: `snakemake fold`.


localrules:
    fold,


rule fold:
    input:
        expand(f"{RESULTS}/{{model}}/fold/check.json", model=MODELS),


rule fold_check:
    input:
        stats=f"{RESULTS}/{{model}}/data/stats.json",
    output:
        f"{RESULTS}/{{model}}/fold/check.json",
    log:
        f"{LOGS}/{{model}}/fold.log",
    params:
        cell=TRAINING_PARAMS,
        cells=lambda w: [(c.mean, c.std) for c in CELLS[w.model] if c.seed == CELLS[w.model][0].seed],
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/fold_check.py"
