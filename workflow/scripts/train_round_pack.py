"""Rule train_round_pack: the round's trial cells that have no result yet, trained as one pack
(cluster.pack > 1); each writes its own cell result and log, and the round's pack file lists
every trial cell's result."""

import json
from pathlib import Path

import _setup
from normsweep.core import cells
from normsweep.core.results import write_json_atomic
from normsweep.training.runner import run_pack

log = _setup.start_logging(snakemake.log)
model = snakemake.wildcards.model
trials = json.loads(Path(snakemake.input.asked).read_text())["trials"]
seeds = {t["seed"] for t in trials}
if len(seeds) != 1:
    raise ValueError(
        f"{snakemake.input.asked}: trials of several seeds {sorted(seeds)}; a pack holds one seed"
    )
seed = seeds.pop()
members = [cells.Cell(model, m, s, seed) for m, s in dict.fromkeys((t["mean"], t["std"]) for t in trials)]
study = snakemake.params.study
todo = [c for c in members if not Path(c.result_path(study)).exists()]
log.info("round %s: %d trial cells, %d to train", snakemake.wildcards["round"], len(members), len(todo))
if todo:
    run_pack(
        model=model,
        members=[(c.mean, c.std) for c in todo],
        seed=seed,
        model_config=_setup.model_config(snakemake),
        outputs=[c.result_path(study) for c in todo],
        logs=[c.log_path(study) for c in todo],
        stats_path=snakemake.input.stats,
        checkpoint=snakemake.params.checkpoint,
        pack_id=f"round~{snakemake.wildcards['round']}",
    )
write_json_atomic(
    snakemake.output[0],
    {
        "round": int(snakemake.wildcards["round"]),
        "members": [[c.mean, c.std] for c in members],
        "results": [c.result_path(study) for c in members],
    },  # fmt: skip
)
