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
    resources:
        # sized from the config's `cluster` block (see config/README.md); used by profiles/slurm
        runtime=lambda w, attempt: train_resources(config, w.model, attempt)["runtime"],
        mem_mb=lambda w: train_resources(config, w.model)["mem_mb"],
        gpu=lambda w: train_resources(config, w.model)["gpu"],
        gpu_model=lambda w: train_resources(config, w.model)["gpu_model"],
        cpus_per_gpu=lambda w: train_resources(config, w.model)["cpus_per_gpu"],
        slurm_partition=lambda w: train_resources(config, w.model)["slurm_partition"],
        slurm_account=lambda w: train_resources(config, w.model)["slurm_account"],
    script:
        "../../scripts/train_cell.py"
