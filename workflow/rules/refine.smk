# Optuna refinement after the grid, for every model with an `optuna` block, in rounds: the warm
# start adds the grid cells to the study; each round asks it for a batch of trials (a local
# checkpoint rule: the study's file is opened only here, on the machine running snakemake),
# trains them as ordinary cells (jobs with a cell's time limit, or one pack), and tells it their
# accuracies; then the trials table, the best point retrained with several seeds, the plots.


include: "inputs/refine.smk"


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
        grid=lookup(dpath="models/{model}/grid", within=config, default=None),
        # the configured cells (a pack's file also lists members dropped since)
        roles=cell_roles,
        seeds=lookup(dpath="models/{model}/seeds", within=config),
    script:
        "../scripts/optuna_warmstart.py"


checkpoint optuna_ask:
    input:
        previous=optuna_previous_round,
        warmstart=f"{RESULTS}/{{model}}/optuna/warmstart.json",
    output:
        f"{RESULTS}/{{model}}/optuna/round~{{round}}/asked.json",
    log:
        f"{LOGS}/{{model}}/optuna/round~{{round}}.ask.log",
    localrule: True
    conda:
        "../../envs/optuna.yaml"
    params:
        optuna=optuna_params,
        size=optuna_round_size,
    script:
        "../scripts/optuna_ask.py"


rule train_round_pack:
    input:
        asked=f"{RESULTS}/{{model}}/optuna/round~{{round}}/asked.json",
        stats=CELL_DATA_STATS,
    output:
        f"{RESULTS}/{{model}}/optuna/round~{{round}}/pack.json",
    log:
        f"{LOGS}/{{model}}/optuna/round~{{round}}.pack.log",
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        **JOB_RESOURCES,
        **TRAIN_EXECUTION,
        runtime=ROUND_PACK_RUNTIME,
        slurm_extra=ROUND_PACK_SBATCH_EXTRA,
    params:
        cell=TRAINING_PARAMS,
        study=STUDY,
        checkpoint=f"{RESULTS}/{{model}}/checkpoints/optuna/round~{{round}}.pt",
    script:
        "../scripts/train_round_pack.py"


rule optuna_tell:
    input:
        asked=f"{RESULTS}/{{model}}/optuna/round~{{round}}/asked.json",
        cells=optuna_round_cells,
    output:
        f"{RESULTS}/{{model}}/optuna/round~{{round}}/told.json",
    log:
        f"{LOGS}/{{model}}/optuna/round~{{round}}.tell.log",
    localrule: True
    conda:
        "../../envs/optuna.yaml"
    params:
        optuna=optuna_params,
    script:
        "../scripts/optuna_tell.py"


checkpoint optuna_summary:
    input:
        last_round=optuna_last_round,
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
        "../scripts/optuna_summary.py"


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
        "../scripts/optuna_best_seeds.py"
