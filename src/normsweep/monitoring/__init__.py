"""A running study, torch-free.

- ``status``: each cell's state from its files and SLURM's queue
- ``report``: the status as text and the progress heatmap
"""
