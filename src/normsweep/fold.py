"""Folding the input normalization into the first convolution.

``conv((x - m) / s)`` equals ``conv'(x)`` with ``w' = w / s`` (per input channel) and
``b' = b - sum(w * m / s)`` over each kernel: the first layer can absorb any (mean, std),
which is why a CNN can learn the same function whatever normalization it is given. Exact
for a convolution without padding (LeNet's conv1); with zero padding the border pixels
differ, because the padded zeros are zeros of the normalized input, not of the raw one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def fold_normalization(conv: nn.Conv2d, mean: Sequence[float], std: Sequence[float]) -> nn.Conv2d:
    """A copy of ``conv`` whose output on raw x equals ``conv``'s on ``(x - mean) / std``."""
    if any(p != 0 for p in conv.padding if isinstance(p, int)) or conv.padding == "same":
        raise ValueError(f"{conv}: folding is exact only without padding (padding={conv.padding})")
    channels = conv.in_channels
    mean_t = torch.as_tensor(mean, dtype=conv.weight.dtype, device=conv.weight.device).expand(channels)
    std_t = torch.as_tensor(std, dtype=conv.weight.dtype, device=conv.weight.device).expand(channels)
    folded = copy.deepcopy(conv)
    with torch.no_grad():
        scale = (1.0 / std_t).reshape(1, channels, 1, 1)
        folded.weight.copy_(conv.weight * scale)
        shift = (conv.weight * (mean_t / std_t).reshape(1, channels, 1, 1)).sum(dim=(1, 2, 3))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        if folded.bias is None:
            folded.bias = nn.Parameter(bias - shift)
        else:
            folded.bias.copy_(bias - shift)
    return folded


def fold_into_model(
    model: nn.Module, mean: Sequence[float], std: Sequence[float], first: str = "conv1"
) -> nn.Module:
    """A copy of ``model`` that takes raw input: its first convolution absorbs the normalization."""
    folded = copy.deepcopy(model)
    setattr(folded, first, fold_normalization(getattr(model, first), mean, std))
    return folded
