"""Which of a network's outputs each class of an ImageFolder is: the weights' own class index.

1000-class ImageNet weights order their outputs by sorted WordNet ids (``imagenet_wnids.txt``),
so a folder named by wnids (ImageNet, Imagenette, a few classes of it) is scored on the weights'
own outputs instead of a new random head that would score chance. :func:`plan_head` picks the
head: ``new`` (no weights), ``mapped`` (wnids; ``predict_over`` all 1000 or the folder's classes),
``kept`` (same count), or ``replaced`` (refused for evaluation only: :func:`check_head`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from normsweep.core.errors import DataError
from normsweep.data.imagenet import flat_labels, is_flat
from normsweep.data.prepare import class_folders

IMAGENET_CLASSES = 1000
WNID = re.compile(r"^n[0-9]{8}$")


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """ImageNet-1k's 1000 wnids in the weights' output order."""
    return tuple((Path(__file__).parent / "imagenet_wnids.txt").read_text().split())


@functools.cache
def _wnid_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


def wnid_map(classes: Sequence[str]) -> list[int] | None:
    """Each class's index among ImageNet-1k's outputs, when every class is an ImageNet-1k wnid."""
    index = _wnid_index()
    if not classes or not all(WNID.match(c) and c in index for c in classes):
        return None
    return [index[c] for c in classes]


@dataclass(frozen=True)
class Head:
    kind: str  # new | mapped | kept | replaced
    outputs: int  # the network's outputs (replaced or new: the folder's classes)
    class_map: tuple[int, ...] | None = None  # mapped: each folder class's output
    weights_outputs: int = 0  # the outputs the weights came with (0: no weights)


def plan_head(classes: Sequence[str], has_weights: bool, outputs: int) -> Head:
    """The head of a network with ``outputs`` outputs (its weights', when ``has_weights``) on a
    folder with ``classes``."""
    if not has_weights:
        return Head("new", len(classes))
    if outputs == IMAGENET_CLASSES and (mapping := wnid_map(classes)) is not None:
        return Head("mapped", outputs, tuple(mapping), outputs)
    if outputs == len(classes):
        return Head("kept", outputs, None, outputs)
    return Head("replaced", len(classes), None, outputs)


def check_head(head: Head, epochs: int, model: str, weights: str, folder: str | Path) -> None:
    """Refuse to evaluate a random head: an evaluation-only study whose weights' classes
    cannot be matched to the folder's."""
    if head.kind == "replaced" and epochs == 0:
        raise DataError(
            f"models.{model}: the weights {weights} have {head.weights_outputs} outputs but {folder} has "
            f"{head.outputs} classes that are not ImageNet-1k WordNet ids (n01440764, ...), so no output "
            f"belongs to a class; an evaluation-only study (epochs: 0) would score a new random last "
            f"layer, i.e. chance. Name the class folders by their wnids as the weights do, or train "
            f"the new head (training.epochs >= 1)"
        )


def folder_classes(root: str | Path, split: str = "val") -> list[str]:
    """The class names of an ImageFolder split, as ImageFolder sorts them (cheap: one listing
    of the split's folder); [] when it has none (yet)."""
    folder = Path(root) / split
    try:
        if is_flat(folder):  # ImageNet's own validation layout: its labels file names the classes
            return sorted(set(flat_labels(folder).values()))
        return class_folders(folder)
    except (OSError, DataError):
        return []
