# Beyond the grid: `snakemake fold`, and the comparison with the notebook's numbers
# (in `all` when the config says compare_notebook: true; config/reproduce.yaml does).


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


rule notebook_comparison:
    input:
        f"{RESULTS}/lenet/tables/cells.parquet",
    output:
        csv=f"{RESULTS}/lenet/tables/notebook.csv",
        md=report(
            f"{RESULTS}/lenet/tables/notebook.md",
            caption="../report/notebook.rst",
            category="Tables",
            subcategory="lenet",
        ),
    log:
        f"{LOGS}/lenet/notebook_comparison.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/notebook_comparison.py"
