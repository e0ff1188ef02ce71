"""The cluster, torch-free.

- ``partition``: the partition against what the study's jobs ask for, before submitting
- ``queue``: what SLURM says about the study's jobs (one squeue and one sacct per refresh)
"""
