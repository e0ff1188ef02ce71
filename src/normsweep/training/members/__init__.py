"""The kinds of members one engine run steps together (each a ``engine.Members``).

- ``separate``: K separate networks with their own optimizers (a cell alone is K = 1)
- ``stacked``: K LeNets stacked on one axis and run under ``vmap``
- ``eval_only``: one network evaluated under K normalizations (``epochs: 0``)
"""
