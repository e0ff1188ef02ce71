# The constants and input functions of rules/refine.smk.


def optuna_rounds(model):
    """The sizes of the model's refinement rounds (n_trials asked `batch` at a time)."""
    opt = config["models"][model]["optuna"]
    return refine_rounds(opt["n_trials"], opt["batch"])


def optuna_round_dir(wildcards, round_number=None):
    number = wildcards["round"] if round_number is None else round_number
    return f"{RESULTS}/{wildcards.model}/optuna/round~{number}"


def optuna_previous_round(wildcards):
    """A round starts from the last one's told record (the first from the warm start)."""
    number = int(wildcards["round"])
    if number == 0:
        return f"{RESULTS}/{wildcards.model}/optuna/warmstart.json"
    return f"{optuna_round_dir(wildcards, number - 1)}/told.json"


def optuna_round_size(wildcards):
    return optuna_rounds(wildcards.model)[int(wildcards["round"])]


def optuna_round_cells(wildcards):
    """The round's trial cells (known once its ask checkpoint ran): each cell's result, made by
    train_cell; or, with cluster.pack > 1, the round's pack, which trains them all in one job."""
    asked = checkpoints.optuna_ask.get(model=wildcards.model, round=wildcards["round"]).output[0]
    if PACK_SIZE > 1:
        return [f"{optuna_round_dir(wildcards)}/pack.json"]
    trials = json.loads(Path(asked).read_text())["trials"]
    cells = {ns_cells.Cell(wildcards.model, t["mean"], t["std"], t["seed"]) for t in trials}
    return sorted(c.result_path(STUDY) for c in cells)


def optuna_last_round(wildcards):
    last = len(optuna_rounds(wildcards.model)) - 1
    return f"{optuna_round_dir(wildcards, last)}/told.json"


OPTUNA_STUDY_KEYS = ("sampler", "seed", "mean", "std", "per_channel", "box")


def optuna_params(wildcards):
    """Where the study lives and how it searches: what every optuna rule needs (not n_trials or
    batch, which only the rounds' sizes depend on: raising n_trials reruns no finished round)."""
    return {
        "journal": f"{RESULTS}/{wildcards.model}/optuna/journal.log",
        "study_name": f"{STUDY}-{wildcards.model}",
        **{k: model_config(wildcards)["optuna"][k] for k in OPTUNA_STUDY_KEYS},
    }


def best_seed_cells(wildcards):
    """The best point retrained with several seeds: ordinary grid-style cells."""
    best = checkpoints.optuna_summary.get(model=wildcards.model).output.best
    point = json.loads(Path(best).read_text())
    return [
        ns_cells.Cell(wildcards.model, point["mean_label"], point["std_label"], seed).result_path(STUDY)
        for seed in model_config(wildcards)["optuna"]["retrain_seeds"]
    ]
