# The constants and input functions of rules/fold.smk.


def fold_cells(wildcards):
    """The (mean, std) of the model's cells, once each (the first seed's)."""
    first_seed = CELLS[wildcards.model][0].seed
    return [(c.mean, c.std) for c in CELLS[wildcards.model] if c.seed == first_seed]
