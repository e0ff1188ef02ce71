"""The normalization ``(x - mean) / std`` itself: one tensor operation per batch, per channel.

A primitive: it imports nothing of the package. The fold (:mod:`normsweep.models.fold`) and every
kind of member (:mod:`normsweep.training.engine`) normalize through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def normalize(
    images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> torch.Tensor:
    """``(x - mean) / std`` per channel on an N x C x H x W tensor; ``None`` leaves x as is."""
    if mean is None or std is None:
        return images
    channels = images.shape[1]
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    if mean_t.shape[0] not in (1, channels) or std_t.shape[0] not in (1, channels):
        raise ValueError(
            f"mean {list(mean)} / std {list(std)}: give one value or one per channel ({channels} channels)"
        )
    return (images - mean_t) / std_t


def per_channel(values: Sequence[float] | None, identity: float, channels: int) -> torch.Tensor:
    """A mean or std as a C x 1 x 1 tensor (one value is repeated over the channels); no
    normalization is (x - 0) / 1, which gives x exactly."""
    if values is None:
        values = [identity]
    t = torch.as_tensor(list(values), dtype=torch.float32)
    if t.numel() == 1:
        t = t.repeat(channels)
    return t.reshape(channels, 1, 1)
