"""Which of a network's outputs each class of an ImageFolder is: the weights' own class index.

Pretrained ImageNet-1k weights (torchvision's and timm's) have 1000 outputs in one order: the
WordNet ids (wnids) of the classes sorted (``n01440764`` first), as ImageFolder sorts ImageNet's
train/ folders (``imagenet_wnids.txt``, the list timm ships as ``imagenet_synsets.txt``). A
folder whose classes are named by wnids (ImageNet itself, Imagenette, ImageNet-100, a few
classes of it) is scored on the weights' own outputs: each folder class maps to its wnid's
index, whatever subset of the 1000 the folder holds. Without that, a 3-class folder would get
a new, random 3-output head, and an evaluation-only study of it would score chance.

How the head of a cell's network is decided (:func:`plan_head`):

- ``new``: no weights; the network gets one output per folder class (trained from random).
- ``mapped``: 1000-class weights and a folder of wnids: the weights' head is kept; with
  ``predict_over: all`` (the default) a prediction is the argmax over all 1000 outputs (the
  top-1 accuracy ImageNet reports; a label is its wnid's index), with ``folder`` over the
  folder's classes only (a k-way task, the way Imagenette results are quoted).
- ``kept``: the weights' outputs are as many as the folder's classes, which are taken in the
  folder's order.
- ``replaced``: the counts differ and no mapping exists: the head is replaced by a new random
  one. A trained study says so in each result and its summary; an evaluation-only study would
  evaluate that random layer, so it is refused before any job (:func:`check_head`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from normsweep.core.errors import DataError
from normsweep.data.imagenet import flat_labels, is_flat

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
        return sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
    except (OSError, DataError):
        return []
