"""From results to what people read, torch-free.

- ``table``: cell results gathered into tidy tables
- ``statistics``: seed noise, and which cells differ from the baseline (McNemar)
- ``comparisons``: best and worst cells, references, spread, speed, against the baseline
- ``summary``: the summary as text, and the aggregate step that writes tables and summary
- ``heatmaps``, ``plots``: the figures
- ``notebook``: the notebook's published numbers and how a rerun compares
"""
