"""The models of the study by name, with what the rest of the package needs to know about
them without importing torch (the workflow reads this while planning)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    dataset: str  # the loader its data needs
    channels: int  # image channels: how many values a per-channel mean or std has
    pack: str  # how a pack of its cells trains: "stacked" (normsweep.pack) or "separate" (normsweep.multinet)


CATALOG: dict[str, ModelInfo] = {
    "lenet": ModelInfo(dataset="mnist", channels=1, pack="stacked"),
    # BatchNorm's batch statistics are per network, and one cell already fills a GPU: a pack
    # reads the data once for K separate networks (and evaluates K normalizations with one)
    "resnet18": ModelInfo(dataset="imagefolder", channels=3, pack="separate"),
}


def model_info(name: str) -> ModelInfo:
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(CATALOG))}") from None
