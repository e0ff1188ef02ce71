"""The networks.

- ``info``: facts derived from the network itself (data, channels, first convolution, packs)
- ``build``: the one place a network is built: its weights, its head, its optimizer
- ``catalog``: facts about an architecture: its source, data, channels, weights, heads
- ``published``: what pretrained weights were published with (preprocessing, top-1)
- ``lenet``: the notebook's own network
- ``fold``: folding the input normalization into the first convolution
- ``normalize``: ``(x - mean) / std`` itself
"""
