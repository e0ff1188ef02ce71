"""The data: what a cell's batches come from.

- ``batches``: the one data interface of training and evaluation (splits of batches)
- ``mnist``: MNIST's IDX files, read, checked, fetched, and their exact statistics
- ``prepare``: an ImageFolder prepared once into shards of uint8 pixels
- ``shards``: reading prepared shards batch by batch, a few batches ahead
- ``cache``: one prepared copy per (folder, split, size), shared by every study
- ``imagenet``: ImageNet's validation split as it ships (a flat folder) and its labels
- ``classes``: which of a network's outputs each class is (``imagenet_wnids.txt``)
"""
