# All cells into tidy tables and a summary, then the figures.


include: "inputs/aggregate.smk"


rule study_config:
    output:
        report(
            f"{RESULTS}/config.yaml",
            caption="../report/config.rst",
            category="Configuration",
        ),
    log:
        f"{LOGS}/study_config.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        config=config,
    script:
        "../scripts/study_config.py"


rule aggregate:
    input:
        results=cell_results,
        # the data's version now: results made on another are marked (normsweep.core.provenance)
        record=data_record,
    output:
        cells_csv=report(
            f"{RESULTS}/{{model}}/tables/cells.csv",
            caption="../report/cells.rst",
            category="Tables",
            subcategory="{model}",
        ),
        cells_parquet=f"{RESULTS}/{{model}}/tables/cells.parquet",
        epochs_csv=f"{RESULTS}/{{model}}/tables/epochs.csv",
        epochs_parquet=f"{RESULTS}/{{model}}/tables/epochs.parquet",
        cell_stats_csv=report(
            f"{RESULTS}/{{model}}/tables/cell_stats.csv",
            caption="../report/cell_stats.rst",
            category="Tables",
            subcategory="{model}",
        ),
        cell_stats_parquet=f"{RESULTS}/{{model}}/tables/cell_stats.parquet",
        summary_json=f"{RESULTS}/{{model}}/tables/summary.json",
        summary_md=report(
            f"{RESULTS}/{{model}}/tables/summary.md",
            caption="../report/summary.rst",
            category="Tables",
            subcategory="{model}",
        ),
    log:
        f"{LOGS}/{{model}}/aggregate.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        roles=cell_roles,
        # with roles, the configured cells: a pack's file also lists members dropped since
        seeds=lookup(dpath="models/{model}/seeds", within=config),
        baseline=lookup(dpath="models/{model}/baseline", within=config, default=None),
        convergence=lookup(dpath="models/{model}/convergence", within=config),
        published=published,
    script:
        "../scripts/aggregate.py"


rule plots:
    input:
        cells=expand(f"{RESULTS}/{{model}}/tables/cells.parquet", model=MODELS),
        epochs=expand(f"{RESULTS}/{{model}}/tables/epochs.parquet", model=MODELS),
        stats=expand(f"{RESULTS}/{{model}}/tables/cell_stats.parquet", model=MODELS),
        summaries=expand(f"{RESULTS}/{{model}}/tables/summary.json", model=MODELS),
    output:
        heatmap=report(f"{RESULTS}/plots/heatmap.png", caption="../report/heatmap.rst", category="Figures"),
        histogram=report(
            f"{RESULTS}/plots/histogram.png",
            caption="../report/histogram.rst",
            category="Figures",
        ),
        curves=report(f"{RESULTS}/plots/curves.png", caption="../report/curves.rst", category="Figures"),
        # the study in one sentence per model (made here: one job fewer per run)
        summary=report(f"{RESULTS}/summary.md", caption="../report/study_summary.rst", category="Tables"),
    log:
        f"{LOGS}/plots.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        convergence={m: config["models"][m]["convergence"] for m in MODELS},
        models=MODELS,
    script:
        "../scripts/plots.py"
