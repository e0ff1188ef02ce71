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


# The notebook's init study: conv1's initial weights and biases scaled by factors at one
# (mean, std). `snakemake init` runs it for every model with an `init_study` block.
INIT_MODELS = [m for m in MODELS if config["models"][m].get("init_study")]


localrules:
    init,
    init_table,


rule init:
    input:
        expand(f"{RESULTS}/{{model}}/init/heatmap.png", model=INIT_MODELS),


rule train_init_cell:
    input:
        stats=f"{RESULTS}/{{model}}/data/stats.json",
    output:
        f"{RESULTS}/{ns_cells.INIT_RESULT}",
    log:
        f"{LOGS}/{ns_cells.INIT_LOG}",
    params:
        cell=TRAINING_PARAMS,
        init_study=lambda w: config["models"][w.model]["init_study"],
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        runtime=RUNTIME,
        **CLUSTER,
    script:
        "../../scripts/train_cell.py"


rule init_table:
    input:
        lambda w: [
            f"{RESULTS}/{ns_cells.INIT_RESULT.format(**c)}"
            for c in ns_cells.init_cells(
                w.model, config["models"][w.model]["init_study"], config["models"][w.model]["seeds"]
            )
        ],
    output:
        table=f"{RESULTS}/{{model}}/init/table.csv",
        heatmap=report(
            f"{RESULTS}/{{model}}/init/heatmap.png",
            caption="../report/init.rst",
            category="Init study",
        ),
    log:
        f"{LOGS}/{{model}}/init_table.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/init_table.py"
