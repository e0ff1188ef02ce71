"""Rule train_pack: train the pack's cells at once; each writes its own result and log, then
the pack's file lists them."""

import _setup
from normsweep.core.results import write_json_atomic
from normsweep.training.runner import run_pack

log = _setup.start_logging(snakemake.log)
w = snakemake.wildcards
members = [tuple(m) for m in snakemake.params.members]
try:
    results = run_pack(
        model=w.model,
        members=members,
        seed=int(w.seed),
        model_config=_setup.model_config(snakemake),
        outputs=snakemake.params.results,
        logs=snakemake.params.logs,
        stats_path=snakemake.input.stats,
        checkpoint=snakemake.params.checkpoint,
        pack_id=w.pack,
    )
except Exception:
    log.exception("pack %s failed", w.pack)
    raise
write_json_atomic(
    snakemake.output[0],
    {
        "pack": w.pack,
        "model": w.model,
        "seed": int(w.seed),
        "members": [list(m) for m in members],
        "results": list(snakemake.params.results),
        "status": [r.status for r in results],
    },
)
