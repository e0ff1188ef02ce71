# The data: fetched on the login node when missing (md5-checked), then checked and measured once.

DOWNLOAD_ROOTS = sorted(
    {config["models"][m]["data"] for m in MODELS if config["models"][m]["download"]}
)

if DOWNLOAD_ROOTS:

    rule download_mnist:
        output:
            [f for root in DOWNLOAD_ROOTS for f in mnist_files(root)],
        log:
            f"{LOGS}/data/download_mnist.log",
        params:
            roots=DOWNLOAD_ROOTS,
        conda:
            "../../envs/train.yaml"
        localrule: True
        script:
            "../../scripts/download_mnist.py"


rule dataset_stats:
    input:
        lambda w: mnist_files(model_config(w)["data"]),
    output:
        f"{RESULTS}/{{model}}/data/stats.json",
    log:
        f"{LOGS}/{{model}}/data/stats.log",
    params:
        root=lambda w: model_config(w)["data"],
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/dataset_stats.py"
