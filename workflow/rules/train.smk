# One job per (model, mean, std, seed) cell.


rule train_cell:
    input:
        stats="results/{model}/data/stats.json",
    output:
        ns_cells.CELL_RESULT,
    log:
        ns_cells.CELL_LOG,
    params:
        cell=training_params,
        checkpoint=ns_cells.CELL_CHECKPOINT,
    conda:
        "../../envs/train.yaml"
    threads: lambda w: model_config(w)["training"]["threads"]
    script:
        "../../scripts/train_cell.py"
