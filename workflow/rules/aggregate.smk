# All cells into tidy tables and a summary, then the figures.


localrules:
    aggregate,
    plots,


rule aggregate:
    input:
        cell_results,
    output:
        cells_csv="results/{model}/tables/cells.csv",
        cells_parquet="results/{model}/tables/cells.parquet",
        epochs_csv="results/{model}/tables/epochs.csv",
        epochs_parquet="results/{model}/tables/epochs.parquet",
        summary_json="results/{model}/tables/summary.json",
        summary_md=report(
            "results/{model}/tables/summary.md",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        "logs/{model}/aggregate.log",
    params:
        roles=lambda w: ns_table.cell_roles(w.model, model_config(w)),
        baseline=lambda w: model_config(w).get("baseline"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/aggregate.py"


rule plots:
    input:
        cells=expand("results/{model}/tables/cells.parquet", model=MODELS),
        epochs=expand("results/{model}/tables/epochs.parquet", model=MODELS),
    output:
        heatmap=report(
            "results/plots/heatmap.png", caption="../report/heatmap.rst", category="Figures"
        ),
        histogram=report(
            "results/plots/histogram.png",
            caption="../report/histogram.rst",
            category="Figures",
        ),
        curves=report(
            "results/plots/curves.png", caption="../report/curves.rst", category="Figures"
        ),
    log:
        "logs/plots.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plots.py"
