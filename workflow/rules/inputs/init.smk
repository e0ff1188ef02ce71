# The constants and input functions of rules/init.smk.


def init_results(wildcards):
    block = model_config(wildcards)
    return [
        f"{RESULTS}/{ns_cells.INIT_RESULT.format(**c)}"
        for c in ns_cells.init_cells(wildcards.model, block["init_study"], block["seeds"])
    ]


INIT_MODELS = [m for m in MODELS if config["models"][m].get("init_study")]
