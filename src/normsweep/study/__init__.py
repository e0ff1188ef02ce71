"""The study: what the workflow runs, torch-free.

- ``config``: the config's schema validation and the checks a schema cannot express
- ``resources``: each job's time limit, resources and params
- ``plan``: what a run will cost before it starts: cells, jobs, GPU-hours
- ``refine``: Optuna refinement in rounds of ordinary cell jobs
- ``migrate``: one-off migrations of a study's files
- ``cli``: what the command-line tools share: which study, and how a bad config is reported
"""
