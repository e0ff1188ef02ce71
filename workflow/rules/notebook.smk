# The notebook's published LeNet numbers beside this study's cells (in `all` when the config
# says compare_notebook: true, as config/reproduce.yaml does).


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
        "../scripts/notebook_comparison.py"
