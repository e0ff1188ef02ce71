"""The networks of the study and the optimizer each one trains with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


class ResNet18(nn.Module):
    """torchvision's ResNet18, returning log-probabilities like LeNet (so NLL loss is the
    cross-entropy of the notebook). Weights from a local file when given (the torchvision
    ImageNet file, checked by sha256 when a hash is given), else trained from scratch; the
    last layer is replaced when the data set has another number of classes."""

    def __init__(
        self, num_classes: int = 1000, weights: str | None = None, weights_sha256: str | None = None
    ):
        super().__init__()
        from torchvision.models import resnet18

        self.net = resnet18(weights=None, num_classes=1000)
        if weights:
            state = torch.load(check_weights(weights, weights_sha256), map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        if num_classes != self.net.fc.out_features:
            self.net.fc = nn.Linear(self.net.fc.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.net(x), dim=1)


def check_weights(path: str, sha256: str | None) -> str:
    """The weights file, after checking it exists and, when a hash is given, its sha256."""
    import hashlib
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: no such weights file (config key 'weights'); give the path "
            f"of a local torchvision ResNet18 state dict, or null to train from scratch"
        )
    if sha256:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if not digest.startswith(sha256.lower()):
            raise ValueError(f"{file}: sha256 {digest}, expected {sha256} (config key 'weights_sha256')")
    return str(file)


def scale_first_layer(model: nn.Module, weight: float = 1.0, bias: float = 1.0) -> nn.Module:
    """Multiply the first convolution's initial weights and biases (the notebook's init study);
    the first convolution is the first ``nn.Conv2d`` in module order (normsweep.fold.first_conv)."""
    if weight != 1.0 or bias != 1.0:
        from .fold import first_conv

        _, conv = first_conv(model)
        with torch.no_grad():
            conv.weight.mul_(weight)
            if conv.bias is not None:
                conv.bias.mul_(bias)
    return model


@dataclass(frozen=True)
class ModelSpec:
    """How one model of the study is built and trained (its data: :mod:`normsweep.catalog`)."""

    build: Callable[..., nn.Module]  # build(num_classes=..., weights=..., weights_sha256=...)
    make_optimizer: Callable[[Iterable[nn.Parameter], float], optim.Optimizer]
    default_lr: float
    plateau: bool  # ReduceLROnPlateau on test accuracy (the MNIST example's protocol)


def adadelta(params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    return optim.Adadelta(params, lr=lr)


def sgd_momentum(params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    return optim.SGD(params, lr=lr, momentum=0.9)


def _lenet(num_classes: int = 10, **_: object) -> nn.Module:
    if num_classes != 10:
        raise ValueError(f"LeNet has 10 outputs (MNIST); this data set has {num_classes} classes")
    return LeNet()


MODELS: dict[str, ModelSpec] = {
    "lenet": ModelSpec(build=_lenet, make_optimizer=adadelta, default_lr=1.0, plateau=True),
    "resnet18": ModelSpec(build=ResNet18, make_optimizer=sgd_momentum, default_lr=0.01, plateau=False),
}


def model_spec(name: str) -> ModelSpec:
    model_info(name)  # the error for an unknown name
    return MODELS[name]
