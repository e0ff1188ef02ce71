"""The models of the study by name, with what the rest of the package needs to know about
them without importing torch (the workflow reads this while planning)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    dataset: str  # the loader its data needs
    channels: int  # image channels: how many values a per-channel mean or std has
    packable: bool  # many cells can train as one stacked model (normsweep.pack)


CATALOG: dict[str, ModelInfo] = {
    "lenet": ModelInfo(dataset="mnist", channels=1, packable=True),
    # BatchNorm's batch statistics, and one cell already fills a GPU
    "resnet18": ModelInfo(dataset="imagefolder", channels=3, packable=False),
}


def model_info(name: str) -> ModelInfo:
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(CATALOG))}") from None
