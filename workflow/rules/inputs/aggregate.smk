# The constants and input functions of rules/aggregate.smk.


def cell_results(wildcards):
    """Every cell's result, or the file of the pack that makes it."""
    if not PACK_RESULT_OF:
        return [c.result_path(STUDY) for c in CELLS[wildcards.model]]
    return list(dict.fromkeys(PACK_RESULT_OF.get(c) or c.result_path(STUDY) for c in CELLS[wildcards.model]))


def cell_roles(wildcards):
    return ns_cells.cell_roles(wildcards.model, model_config(wildcards))


def published(wildcards):
    """The model's pretrained weights' own preprocessing and published top-1 (or None)."""
    block = model_config(wildcards)
    arch = ns_catalog.arch_of(wildcards.model, block)
    own = ns_published.preprocessing(arch, block.get("weights"))
    return own.to_dict() if own else None
