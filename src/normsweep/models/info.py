"""What the rest of the package needs to know about an architecture, derived from the
network itself (built once by :mod:`normsweep.models.build`, on torch's ``meta`` device: no
memory, no weights): its data, input channels, first convolution, outputs and how its packs
train. Planning a LeNet study imports no torch; other answers are kept per library version.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from normsweep.models.catalog import LENET, ArchError, _cached, check_arch, source

#: The data each input channel count reads: MNIST's gray digits or an ImageFolder's RGB photos.
DATASETS = {1: "mnist", 3: "imagefolder"}


@dataclass(frozen=True)
class ModelInfo:
    dataset: str  # the loader its data needs: "mnist" or "imagefolder"
    channels: int  # image channels: how many values a per-channel mean or std has
    pack: str  # how a pack of its cells trains: "stacked" (normsweep.training.members.stacked) or "separate" (normsweep.training.members.separate)
    first_conv: str = "conv1"  # the first nn.Conv2d in module order (the fold check, the init study)
    outputs: int = 10  # the network's own classes (its last layer's outputs; what its weights carry)


def model_info(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> ModelInfo:
    """What an architecture needs, derived from the network (built once, on the meta device;
    torchvision's and timm's answers are kept in :func:`cache_file`, so that planning, every
    job's start and the status import no torch once a study has been planned)."""
    if arch == LENET:
        return ModelInfo(dataset="mnist", channels=1, pack="stacked")
    kwargs = json.dumps(dict(arch_kwargs or {}), sort_keys=True)
    kept = _cached(["info 2", arch, kwargs], lambda: vars(_derived_info(arch, kwargs)), source(arch))
    return ModelInfo(**kept)


@functools.cache
def _derived_info(arch: str, kwargs_json: str) -> ModelInfo:
    import torch

    from normsweep.models.build import build_network, last_layer
    from normsweep.models.fold import first_conv

    check_arch(arch)
    try:
        with torch.device("meta"):
            net = build_network(arch, json.loads(kwargs_json))
    except ArchError:
        raise
    except Exception as error:  # the user's class or arch_kwargs
        raise ArchError(f"cannot build {arch} with arch_kwargs {kwargs_json}: {error}") from None
    try:
        name, conv = first_conv(net)
    except ValueError as error:
        raise ArchError(str(error)) from None
    if conv.in_channels not in DATASETS:
        raise ArchError(
            f"{arch} takes {conv.in_channels} input channels (its first convolution {name}); "
            f"the data sets here have 1 (MNIST) or 3 (ImageFolder, RGB)"
        )
    # A pack of any network but LeNet trains K separate networks, each batch read once: right
    # for BatchNorm (batch statistics per network) and for any module; the stacked (vmap) pack
    # and its memory model are LeNet's.
    _, head = last_layer(net)
    outputs = head.out_features if isinstance(head, torch.nn.Linear) else head.out_channels
    return ModelInfo(dataset=DATASETS[conv.in_channels], channels=conv.in_channels, pack="separate",
                     first_conv=name, outputs=int(outputs))  # fmt: skip
