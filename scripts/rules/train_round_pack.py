"""Rule train_round_pack: the round's trial cells that have no result yet, trained as one pack
(cluster.pack > 1); each writes its own cell result and log, and the round's pack file lists
every trial cell's result."""

import json
from pathlib import Path

import _setup
from normsweep import cells
from normsweep.results import write_json_atomic
from normsweep.runner import run_pack

log = _setup.start_logging(snakemake.log)
model = snakemake.wildcards.model
trials = json.loads(Path(snakemake.input.asked).read_text())["trials"]
seeds = {t["seed"] for t in trials}
if len(seeds) != 1:
    raise ValueError(
        f"{snakemake.input.asked}: trials of several seeds {sorted(seeds)}; a pack holds one seed"
    )
seed = seeds.pop()
members = list(dict.fromkeys((t["mean"], t["std"]) for t in trials))


def result_path(mean, std):
    return (
        f"{snakemake.params.cells}/{cells.CELL_RESULT.split('/', 2)[2].format(mean=mean, std=std, seed=seed)}"
    )


def log_path(mean, std):
    return f"{snakemake.params.logs}/{cells.CELL_LOG.split('/', 2)[2].format(mean=mean, std=std, seed=seed)}"


todo = [m for m in members if not Path(result_path(*m)).exists()]
log.info("round %s: %d trial cells, %d to train", snakemake.wildcards["round"], len(members), len(todo))
if todo:
    run_pack(
        model=model,
        members=todo,
        seed=seed,
        model_config=snakemake.params.cell,
        outputs=[result_path(*m) for m in todo],
        logs=[log_path(*m) for m in todo],
        stats_path=snakemake.input.stats,
        checkpoint=snakemake.params.checkpoint,
        pack_id=f"round~{snakemake.wildcards['round']}",
    )
write_json_atomic(
    snakemake.output[0],
    {
        "round": int(snakemake.wildcards["round"]),
        "members": [list(m) for m in members],
        "results": [result_path(*m) for m in members],
    },  # fmt: skip
)
