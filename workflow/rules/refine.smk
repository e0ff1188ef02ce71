# Optuna refinement after the grid, for every model with an `optuna` block: warm start from
# the grid cells, parallel workers (cluster jobs like grid cells), then the trials table,
# the best point, its retraining with several seeds, and the plots.

OPTUNA_MODELS = [m for m in MODELS if config["models"][m].get("optuna")]
OPTUNA_TARGETS = expand(
    [
        f"{RESULTS}/{{model}}/optuna/best_seeds.json",
        f"{RESULTS}/{{model}}/optuna/history.png",
        f"{RESULTS}/{{model}}/tables/cells_refined.parquet",
    ],
    model=OPTUNA_MODELS,
)


rule optuna_warmstart:
    input:
        cell_results,
    output:
        f"{RESULTS}/{{model}}/optuna/warmstart.json",
    log:
        f"{LOGS}/{{model}}/optuna/warmstart.log",
    localrule: True
    conda:
        "../../envs/optuna.yaml"
    params:
        optuna=optuna_params,
        grid=grid_config,
    script:
        "../../scripts/rules/optuna_warmstart.py"


rule optuna_worker:
    input:
        warmstart=f"{RESULTS}/{{model}}/optuna/warmstart.json",
        stats=data_stats,
    output:
        f"{RESULTS}/{{model}}/optuna/worker~{{worker}}.json",
    log:
        f"{LOGS}/{{model}}/optuna/worker~{{worker}}.log",
    conda:
        "../../envs/optuna.yaml"
    threads: TRAIN_THREADS
    resources:
        **CLUSTER,
        runtime=optuna_worker_runtime,
    params:
        optuna=optuna_params,
        cell=TRAINING_PARAMS,
        study=STUDY,
    script:
        "../../scripts/rules/optuna_worker.py"


checkpoint optuna_summary:
    input:
        optuna_worker_results,
        grid=f"{RESULTS}/{{model}}/tables/cells.parquet",
    output:
        trials_csv=report(
            f"{RESULTS}/{{model}}/optuna/trials.csv",
            caption="../report/optuna_trials.rst",
            category="Optuna",
        ),
        trials_parquet=f"{RESULTS}/{{model}}/optuna/trials.parquet",
        best=f"{RESULTS}/{{model}}/optuna/best.json",
        history=report(
            f"{RESULTS}/{{model}}/optuna/history.png",
            caption="../report/optuna_history.rst",
            category="Optuna",
        ),
        over_grid=report(
            f"{RESULTS}/{{model}}/optuna/trials_over_grid.png",
            caption="../report/optuna_over_grid.rst",
            category="Optuna",
        ),
    log:
        f"{LOGS}/{{model}}/optuna/summary.log",
    localrule: True
    conda:
        "../../envs/optuna.yaml"
    params:
        optuna=optuna_params,
    script:
        "../../scripts/rules/optuna_summary.py"


rule optuna_best_seeds:
    input:
        cells=best_seed_cells,
        best=f"{RESULTS}/{{model}}/optuna/best.json",
    output:
        best=f"{RESULTS}/{{model}}/optuna/best_seeds.json",
        cells_csv=report(
            f"{RESULTS}/{{model}}/tables/cells_refined.csv",
            caption="../report/cells_refined.rst",
            category="Tables",
            subcategory="{model}",
        ),
        cells_parquet=f"{RESULTS}/{{model}}/tables/cells_refined.parquet",
    log:
        f"{LOGS}/{{model}}/optuna/best_seeds.log",
    localrule: True
    conda:
        "../../envs/optuna.yaml"
    params:
        roles=cell_roles,
        cells_folder=f"{RESULTS}/{{model}}/cells",
    script:
        "../../scripts/rules/optuna_best_seeds.py"
