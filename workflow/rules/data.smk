# The data: checked (md5) on the login node, fetched there when missing and allowed, then
# measured once. Outputs stay under results/: the rules never delete or rewrite the data.


rule check_data:
    output:
        f"{RESULTS}/{{model}}/data/files.json",
    log:
        f"{LOGS}/{{model}}/data/check.log",
    params:
        root=lambda w: model_config(w)["data"],
    conda:
        "../../envs/train.yaml"
    localrule: True
    script:
        "../../scripts/check_data.py"


rule dataset_stats:
    input:
        f"{RESULTS}/{{model}}/data/files.json",
    output:
        f"{RESULTS}/{{model}}/data/stats.json",
    log:
        f"{LOGS}/{{model}}/data/stats.log",
    params:
        root=lambda w: model_config(w)["data"],
    conda:
        "../../envs/train.yaml"
    localrule: True
    script:
        "../../scripts/dataset_stats.py"
