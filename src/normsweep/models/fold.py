"""Folding the input normalization into the first convolution.

``conv((x - m) / s)`` equals ``conv'(x)`` with ``w' = w / s`` (per input channel) and
``b' = b - sum(w * m / s)`` over each kernel: the first layer can absorb any (mean, std),
which is why a CNN can learn the same function whatever normalization it is given.

Exact for a convolution without padding (LeNet's conv1). With zero padding (ResNet18's conv1:
7x7, padding 3) the padded zeros are zeros of the *normalized* input, that is the value ``m``
of the raw input: the folded layer pads the raw image with each channel's mean instead of
zero (:class:`MeanPaddedConv2d`), and is exact again. Reflect or replicate padding commutes
with the per-channel affine map, so such a layer folds as it is.

The first convolution of any model is its first ``nn.Conv2d`` in module order
(:func:`first_conv`), whatever its name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from normsweep.models.normalize import normalize


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The qualified name and module of the first ``nn.Conv2d`` of ``model`` (module order)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d: nothing to fold the normalization into")


class MeanPaddedConv2d(nn.Module):
    """A convolution whose input is padded with a constant per channel (the mean that the
    normalization subtracted) instead of zeros; the convolution itself has no padding."""

    def __init__(self, conv: nn.Conv2d, pad_value: torch.Tensor, padding: tuple[int, int]):
        super().__init__()
        self.conv = conv
        self.padding = padding
        self.register_buffer("pad_value", pad_value.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        n, c, h, w = x.shape
        padded = self.pad_value.to(x.dtype).expand(n, c, h + 2 * ph, w + 2 * pw).clone()
        padded[:, :, ph : ph + h, pw : pw + w] = x
        return self.conv(padded)


def fold_normalization(conv: nn.Conv2d, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """A layer whose output on raw x equals ``conv``'s on ``(x - mean) / std``: the convolution
    with folded weights and bias, padded with the mean where ``conv`` pads with zeros."""
    channels = conv.in_channels
    if conv.groups != 1:
        raise ValueError(f"{conv}: a grouped first convolution (groups={conv.groups}) is not folded here")
    mean_t = torch.as_tensor(mean, dtype=conv.weight.dtype, device=conv.weight.device).expand(channels)
    std_t = torch.as_tensor(std, dtype=conv.weight.dtype, device=conv.weight.device).expand(channels)
    folded = copy.deepcopy(conv)
    with torch.no_grad():
        folded.weight.copy_(conv.weight / std_t.reshape(1, channels, 1, 1))
        shift = (conv.weight * (mean_t / std_t).reshape(1, channels, 1, 1)).sum(dim=(1, 2, 3))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        if folded.bias is None:
            folded.bias = nn.Parameter(bias - shift)
        else:
            folded.bias.copy_(bias - shift)
    padding = _padding(conv)
    if not any(padding) or conv.padding_mode != "zeros":
        return folded
    folded.padding = (0, 0)
    return MeanPaddedConv2d(folded, mean_t.detach().clone(), padding)  # type: ignore[arg-type]


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The zeros a convolution adds on each side, also for padding="valid" / "same"."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        if any(k % 2 == 0 for k in conv.kernel_size) or any(d != 1 for d in conv.dilation):
            raise ValueError(f"{conv}: padding='same' with an even kernel or dilation is not folded here")
        return (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
    return (int(conv.padding[0]), int(conv.padding[1]))


def fold_into_model(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """A copy of ``model`` that takes raw input: its first convolution absorbs the normalization."""
    folded = copy.deepcopy(model)
    name, conv = first_conv(folded)
    parent_name, _, child = name.rpartition(".")
    parent = folded.get_submodule(parent_name) if parent_name else folded
    setattr(parent, child, fold_normalization(conv, mean, std))
    return folded


def check_fold(
    model: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> tuple[float, float]:
    """max |folded(x) - model((x - mean) / std)| over ``images`` (both in eval mode), and the
    largest |model((x - mean) / std)| it is measured against."""
    model.eval()
    with torch.inference_mode():
        reference = model(normalize(images, mean, std))
        diff = (fold_into_model(model, mean, std).eval()(images) - reference).abs().max()
        return float(diff), float(reference.abs().max())
