"""normsweep: how input normalization changes what a CNN learns.

The package in layers, each importing only those below it (pyproject.toml's import-linter
contracts; docs/development.md draws the same picture, and a test checks it against the tree):

    monitoring   a running study's state and its report                 (torch-free)
    cluster      the partition check and SLURM's queue                  (torch-free)
    analysis     tables, statistics, summary, figures, the notebook's numbers (torch-free)
    training     the runner, the one engine and its kinds of members
    study        the config, job resources, the plan, refinement, migrations (torch-free)
    data         batches, MNIST, image folders and their shards, the cache, ImageNet
    models       builders, the catalog, published weights, LeNet, folding, normalization
    core         values every side shares: cell names, the run spec, results, errors, files

A subpackage's ``__init__`` is its table of contents and imports nothing, so that importing
one module never imports torch for a dry run or a status on a login node.
"""
