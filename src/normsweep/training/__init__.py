"""Training and evaluation of cells, alone or in packs.

- ``runner``: one cell or pack from files to files; picks the kind of members
- ``members``: the kinds of members the engine steps (separate, stacked, eval_only)
- ``engine``: the one training loop: epochs, evaluation, plateau, divergence, checkpoints
- ``progress``: where a run stands, as its checkpoint keeps it
- ``checkpoint``: atomic saves, the fingerprint check, random states, positions in an epoch
- ``devices``: the device, its name in a result, precision and execution switches
- ``plateau``: the learning-rate plateau and the epoch records
- ``tensorfile``: reading tensor files without unpickling code
"""
