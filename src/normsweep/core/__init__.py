"""Values every side shares, torch-free.

- ``cells``: the grid of (model, mean, std, seed) cells and how a cell is named
- ``spec``: what a run is (``CellSpec``, ``TrainConfig``) and a checkpoint's fingerprint
- ``results``: a cell's result: its schema, atomic write and read; the code's version
- ``provenance``: which version of its data a result was made on
- ``errors``: errors that name the file or key at fault and the fix
- ``files``: publishing files correctly on cluster file systems, with no lock
- ``signals``: what a scheduler sends before it kills a job
"""
