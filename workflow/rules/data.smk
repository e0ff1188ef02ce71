# The data: checked (md5) on the login node, fetched there when missing and allowed, then
# measured once. Outputs stay under results/<study>/<model>/data/<key>/ (the key: a hash of
# the folder and image size): the rules never delete or rewrite the data.


rule check_data:
    output:
        f"{RESULTS}/{{model}}/data/{{datakey}}/files.json",
    log:
        f"{LOGS}/{{model}}/data/{{datakey}}/check.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        data=data_params,
    script:
        "../../scripts/rules/check_data.py"


rule dataset_stats:
    input:
        f"{RESULTS}/{{model}}/data/{{datakey}}/files.json",
    output:
        f"{RESULTS}/{{model}}/data/{{datakey}}/stats.json",
    log:
        f"{LOGS}/{{model}}/data/{{datakey}}/stats.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        data=data_params,
    script:
        "../../scripts/rules/dataset_stats.py"
