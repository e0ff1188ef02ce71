"""What pretrained weights were published with: their resize, crop, interpolation and
mean/std (torchvision's ``weights.transforms()``, timm's ``pretrained_cfg``) and their published
ImageNet-1K top-1. The config takes them as defaults and as the reference cell ``own``; each
result records them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from normsweep.models.catalog import TIMM, _cached, import_timm, is_weights_name, source, torchvision_weights


@dataclass(frozen=True)
class Preprocessing:
    """What a pretrained model was evaluated with: Resize(resize), CenterCrop(crop) with this
    interpolation, then (x - mean) / std; and its published ImageNet-1K top-1 when known."""

    resize: int
    crop: int
    interpolation: str
    mean: list[float]
    std: list[float]
    source: str  # where the values come from: "torchvision ResNet50_Weights.IMAGENET1K_V2", ...
    published_top1: float | None = None  # a fraction (0.76130), None when not published

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def preprocessing(arch: str, weights: str | None) -> Preprocessing | None:
    """The preprocessing a model was published with (:func:`_preprocessing`), kept like
    :func:`model_info`'s answers."""
    kind = source(arch)
    if kind not in ("torchvision", "timm") or (kind == "torchvision" and not is_weights_name(arch, weights)):
        return None

    def compute() -> dict[str, Any] | None:
        found = _preprocessing(arch, weights)
        return found.to_dict() if found else None

    kept = _cached(["preprocessing", arch, str(weights)], compute, kind)
    return Preprocessing(**kept) if kept else None


def _preprocessing(arch: str, weights: str | None) -> Preprocessing | None:
    """The preprocessing a model was published with: torchvision's named weights
    (``weights.transforms()``, ``meta["_metrics"]``) or a timm model's ``pretrained_cfg``;
    None for lenet, the user's classes, and torchvision models without named weights."""
    kind = source(arch)
    if kind == "torchvision" and is_weights_name(arch, weights):
        entry = torchvision_weights(arch, str(weights))
        t = entry.transforms()
        top1 = entry.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        return Preprocessing(
            resize=int(t.resize_size[0]),
            crop=int(t.crop_size[0]),
            interpolation=t.interpolation.value,
            mean=[float(v) for v in t.mean],
            std=[float(v) for v in t.std],
            source=f"torchvision {type(entry).__name__}.{entry.name}",
            published_top1=None if top1 is None or not math.isfinite(top1) else round(top1 / 100, 6),
        )
    if kind == "timm":
        timm = import_timm()
        name = arch[len(TIMM) :]
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:
            return None
        crop = int(cfg.input_size[-1])
        return Preprocessing(
            resize=int(math.floor(crop / cfg.crop_pct)),  # as timm's transforms_factory scales
            crop=crop,
            interpolation=str(cfg.interpolation),
            mean=[float(v) for v in cfg.mean],
            std=[float(v) for v in cfg.std],
            source=f"timm pretrained_cfg of {name}",
        )
    return None
