"""The networks of the study and the optimizer each one trains with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim

from .catalog import model_info


class LeNet(nn.Module):
    """The PyTorch MNIST example's network (pytorch/examples, mnist/main.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def scale_first_layer(model: nn.Module, weight: float = 1.0, bias: float = 1.0, first: str = "conv1") -> nn.Module:
    """Multiply the first convolution's initial weights and biases (the notebook's init study)."""
    if weight != 1.0 or bias != 1.0:
        conv = getattr(model, first)
        with torch.no_grad():
            conv.weight.mul_(weight)
            if conv.bias is not None:
                conv.bias.mul_(bias)
    return model


@dataclass(frozen=True)
class ModelSpec:
    """How one model of the study is built and trained (its data: :mod:`normsweep.catalog`)."""

    build: Callable[[], nn.Module]
    make_optimizer: Callable[[Iterable[nn.Parameter], float], optim.Optimizer]
    default_lr: float


def adadelta(params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    return optim.Adadelta(params, lr=lr)


MODELS: dict[str, ModelSpec] = {
    "lenet": ModelSpec(build=LeNet, make_optimizer=adadelta, default_lr=1.0),
}


def model_spec(name: str) -> ModelSpec:
    model_info(name)  # the error for an unknown name
    return MODELS[name]
