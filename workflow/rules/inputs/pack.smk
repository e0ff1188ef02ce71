# The constants and input functions of rules/pack.smk.


# Packs (cluster.pack > 1): the cells still to do, K at a time per model and seed, each pack
# one job (rules/pack.smk). The packs that ran before stay the makers of their cells (read
# from their files), whatever cluster.pack is now; a cell made alone is its own input.
PACK_SIZE = config["cluster"]["pack"]
PACKS_DONE = {m: ns_cells.read_packs(STUDY, m) for m in MODELS}
PACKS_TODO = {m: ns_cells.study_packs(m, config["models"][m], PACK_SIZE, STUDY) for m in MODELS}
PACK_BY_ID = {(p.model, p.id): p for m in MODELS for p in PACKS_DONE[m] + PACKS_TODO[m]}
PACK_RESULT_OF = {
    c: p.result_path(STUDY)
    for m in MODELS
    for p in PACKS_DONE[m]
    for c in p.cells
    if os.path.exists(c.result_path(STUDY))
}
PACK_RESULT_OF.update({c: p.result_path(STUDY) for m in MODELS for p in PACKS_TODO[m] for c in p.cells})
PACK_RUNTIME = per_model({m: pack_runtime_minutes(config, m) for m in MODELS})
ROUND_PACK_RUNTIME = per_model({m: round_pack_runtime_minutes(config, m) for m in MODELS})
PACK_SBATCH_EXTRA = per_model({m: sbatch_extra(config, pack_runtime_minutes(config, m)) for m in MODELS})
ROUND_PACK_SBATCH_EXTRA = per_model(
    {m: sbatch_extra(config, round_pack_runtime_minutes(config, m)) for m in MODELS}
)


def pack_of(wildcards):
    return PACK_BY_ID[(wildcards.model, wildcards.pack)]


def pack_members(wildcards):
    return [[c.mean, c.std] for c in pack_of(wildcards).cells]


def pack_member_results(wildcards):
    return [c.result_path(STUDY) for c in pack_of(wildcards).cells]


def pack_member_logs(wildcards):
    return [c.log_path(STUDY) for c in pack_of(wildcards).cells]
