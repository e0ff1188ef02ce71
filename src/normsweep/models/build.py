"""The one place a network is built: the bare network of an architecture, with its weights,
its head fitted to the data's classes, and the optimizer it trains with (the facts it needs
come from :mod:`normsweep.models.catalog`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim

from normsweep.models.catalog import (
    LENET,
    TIMM,
    ArchError,
    check_weights,
    hub_checkpoints,
    import_class,
    import_timm,
    is_weights_name,
    source,
    torchvision_weights,
)
from normsweep.models.fold import first_conv
from normsweep.models.lenet import LeNet


def last_layer(net: Any) -> tuple[str, Any]:
    """A network's classifier: its last ``nn.Linear`` or, failing that, its last ``nn.Conv2d``
    (SqueezeNet's), with its name."""
    import torch.nn as nn

    layers = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    layers = layers or [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if not layers:
        raise ArchError(f"{type(net).__name__} has no nn.Linear or nn.Conv2d as its classifier")
    return layers[-1]


def build_network(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> Any:
    """The bare network of ``arch`` (no weights, its own number of classes)."""
    kwargs = dict(arch_kwargs or {})
    kind = source(arch)
    if kind == "lenet":
        from normsweep.models.lenet import LeNet

        return LeNet(**kwargs)
    if kind == "timm":
        return import_timm().create_model(arch[len(TIMM) :], pretrained=False, **kwargs)
    if kind == "import":
        return import_class(arch)(**kwargs)
    from torchvision import models

    return models.get_model(arch, weights=None, **kwargs)


def build_with_weights(arch: str, weights: str, arch_kwargs: Mapping[str, Any] | None = None) -> Any:
    """A torchvision network with its named weights, built by torchvision's own builder, which
    does what those weights need: DenseNet's old key names renamed, GoogLeNet's and Inception
    v3's ``transform_input=True``, the SWAG ViTs' ``image_size``, the auxiliary heads dropped
    or kept. The file is read from $TORCH_HOME (checked by :func:`check_weights` first); a
    download is refused, never made."""
    import torch.hub
    from torchvision import models

    entry = torchvision_weights(arch, weights)

    def refuse(url: str, *_: Any, **__: Any) -> None:
        raise ArchError(f"{url}: not in torch's cache ({hub_checkpoints()}); nothing is downloaded here")

    saved, torch.hub.download_url_to_file = torch.hub.download_url_to_file, refuse
    try:
        return models.get_model(arch, weights=entry, **dict(arch_kwargs or {}))
    finally:
        torch.hub.download_url_to_file = saved


class Classifier(nn.Module):
    """Any classification network (torchvision, timm, the user's own), returning
    log-probabilities like LeNet (so NLL loss is the cross-entropy of the notebook). Its
    weights come from a local file (checked by sha256) or torch's cache, never downloaded; the
    last layer is replaced when the data set has another number of classes."""

    def __init__(
        self,
        arch: str,
        num_classes: int,
        weights: str | None = None,
        weights_sha256: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
        keep: Sequence[int] | None = None,
    ):
        super().__init__()
        kwargs = dict(arch_kwargs or {})
        if source(arch) == "timm" and weights:  # timm loads its own file (pretrained_cfg_overlay)
            file = check_weights(arch, weights, weights_sha256)
            self.net = import_timm().create_model(
                arch[len(TIMM) :], pretrained=True, pretrained_cfg_overlay={"file": str(file)}, **kwargs
            )
        elif is_weights_name(arch, weights):  # torchvision's builder, reading the checked file
            check_weights(arch, str(weights), weights_sha256)
            self.net = build_with_weights(arch, str(weights), kwargs)
        else:
            self.net = build_network(arch, kwargs)
            if weights:
                file = check_weights(arch, weights, weights_sha256)
                self.net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        replace_head(self.net, num_classes)
        # keep: only these outputs, in this order (a prediction over the folder's classes)
        self.keep = torch.as_tensor(list(keep), dtype=torch.int64) if keep is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = main_logits(self.net(x))
        if self.keep is not None:
            logits = logits[:, self.keep.to(logits.device)]
        return F.log_softmax(logits, dim=1)


def main_logits(output: Any) -> torch.Tensor:
    """The network's classification output. GoogLeNet and Inception v3 return their auxiliary
    classifiers' outputs too while training (``GoogLeNetOutputs``, ``InceptionOutputs``):
    the main logits are the cell's output and its loss; the auxiliary heads take no part in it
    (the notebook's protocol trains one output)."""
    return output.logits if hasattr(output, "logits") else output


def replace_head(net: nn.Module, num_classes: int) -> None:
    """Give ``net`` ``num_classes`` outputs: its classifier (:func:`last_layer`)
    made anew when its output count differs."""
    name, layer = last_layer(net)
    if isinstance(layer, nn.Linear):
        if layer.out_features == num_classes:
            return
        new: nn.Module = nn.Linear(layer.in_features, num_classes, bias=layer.bias is not None)
    else:
        if layer.out_channels == num_classes:
            return
        new = nn.Conv2d(layer.in_channels, num_classes, layer.kernel_size, layer.stride, layer.padding)
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, new.to(layer.weight.device))


def scale_first_layer(model: nn.Module, weight: float = 1.0, bias: float = 1.0) -> nn.Module:
    """Multiply the first convolution's initial weights and biases (the notebook's init study);
    the first convolution is the first ``nn.Conv2d`` in module order (normsweep.models.fold.first_conv)."""
    if weight != 1.0 or bias != 1.0:
        _, conv = first_conv(model)
        with torch.no_grad():
            conv.weight.mul_(weight)
            if conv.bias is not None:
                conv.bias.mul_(bias)
    return model


@dataclass(frozen=True)
class ModelSpec:
    """How a model of the study trains (its architecture and data: :mod:`normsweep.models.catalog`)."""

    make_optimizer: Callable[[Iterable[nn.Parameter], float], optim.Optimizer]
    default_lr: float
    plateau: bool  # ReduceLROnPlateau on test accuracy (the MNIST example's protocol)


def adadelta(params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    return optim.Adadelta(params, lr=lr)


def sgd_momentum(params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    return optim.SGD(params, lr=lr, momentum=0.9)


#: LeNet trains as the MNIST example does; every other network as the notebook's ResNet18 (SGD
#: lr 0.01, momentum 0.9, no schedule).
LENET_SPEC = ModelSpec(make_optimizer=adadelta, default_lr=1.0, plateau=True)
IMAGE_SPEC = ModelSpec(make_optimizer=sgd_momentum, default_lr=0.01, plateau=False)


def model_spec(arch: str) -> ModelSpec:
    return LENET_SPEC if arch == LENET else IMAGE_SPEC


def build_model(
    arch: str,
    num_classes: int,
    weights: str | None = None,
    weights_sha256: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    keep: Sequence[int] | None = None,
) -> nn.Module:
    """The network a cell starts from, from torch's generator as it stands (``keep``: only
    these of its outputs, e.g. a folder's classes among the weights' 1000)."""
    if arch == LENET:
        if num_classes != 10:
            raise ValueError(f"LeNet has 10 outputs (MNIST); this data set has {num_classes} classes")
        if weights:
            raise ValueError("LeNet has no pretrained weights: set weights to null")
        return LeNet(**dict(arch_kwargs or {}))
    return Classifier(arch, num_classes, weights, weights_sha256, arch_kwargs, keep)
