# All cells into tidy tables and a summary, then the figures.


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
        "../../scripts/rules/study_config.py"


rule aggregate:
    input:
        cell_results,
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
        baseline=baseline,
        convergence=convergence_levels,
        published=published,
    script:
        "../../scripts/rules/aggregate.py"
