# One job per (model, mean, std, seed) cell.


rule train_cell:
    input:
        stats=f"{RESULTS}/{{model}}/data/stats.json",
    output:
        f"{RESULTS}/{ns_cells.CELL_RESULT}",
    log:
        f"{LOGS}/{ns_cells.CELL_LOG}",
    params:
        cell=training_params,
        checkpoint=f"{RESULTS}/{ns_cells.CELL_CHECKPOINT}",
    conda:
        "../../envs/train.yaml"
    threads: lambda w: model_config(w)["training"]["threads"]
    script:
        "../../scripts/train_cell.py"
