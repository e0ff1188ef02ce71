"""The architecture a model entry names, and what the rest of the package needs to know about
it: its data, input channels and how its packs train (derived from the network itself), its
weights (never downloaded) and their own preprocessing.

A model entry's key is the study's name for the model (folders, heatmap rows); its ``arch``
(default: the key) is one of

- ``lenet``: the PyTorch MNIST example's network (:class:`normsweep.nets.LeNet`);
- a torchvision classification model (``torchvision.models.list_models(module=torchvision.models)``);
- ``package.module:Class``: the user's own ``nn.Module``, built with ``arch_kwargs``;
- ``timm:<name>`` (with timm installed), e.g. ``timm:vit_small_patch16_224.augreg_in21k_ft_in1k``.

Planning a LeNet study imports no torch; any other architecture is built once on torch's
``meta`` device (no memory, no weights) to find its first convolution and its BatchNorm layers.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import write_text_atomic

LENET = "lenet"
TIMM = "timm:"
#: The data each input channel count reads: MNIST's gray digits or an ImageFolder's RGB photos.
DATASETS = {1: "mnist", 3: "imagefolder"}
#: How to get timm (an optional dependency: the core needs torchvision only).
TIMM_HINT = "install it with `bash scripts/setup_env.sh --timm` (or `pip install timm==1.0.31`)"


class ArchError(ValueError):
    """An architecture, its arguments or its weights that cannot work; the message says why."""


@dataclass(frozen=True)
class ModelInfo:
    dataset: str  # the loader its data needs: "mnist" or "imagefolder"
    channels: int  # image channels: how many values a per-channel mean or std has
    pack: str  # how a pack of its cells trains: "stacked" (normsweep.stacked) or "separate" (normsweep.separate)
    first_conv: str = "conv1"  # the first nn.Conv2d in module order (the fold check, the init study)
    outputs: int = 10  # the network's own classes (its last layer's outputs; what its weights carry)


def arch_of(name: str, block: Mapping[str, Any] | None) -> str:
    """The architecture of model entry ``name``: its ``arch``, else the name itself."""
    return str((block or {}).get("arch") or name)


def kwargs_of(block: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((block or {}).get("arch_kwargs") or {})


def source(arch: str) -> str:
    """Where an architecture comes from: lenet, timm, import (module:Class) or torchvision."""
    if arch == LENET:
        return "lenet"
    if arch.startswith(TIMM):
        return "timm"
    if ":" in arch:
        return "import"
    return "torchvision"


def torchvision_names() -> list[str]:
    from torchvision import models

    return list(models.list_models(module=models))


def _close(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    return f"closest: {', '.join(close)}" if close else f"known: {', '.join(sorted(known)[:12])}, ..."


def check_arch(arch: str) -> None:
    """Raise :class:`ArchError` naming close known names when ``arch`` is unknown."""
    kind = source(arch)
    if kind == "lenet":
        return
    _cached(["known", arch], lambda: _check_arch(arch, kind), kind)


def _check_arch(arch: str, kind: str) -> bool:
    if kind == "timm":
        timm = import_timm()
        name = arch[len(TIMM) :]
        if not timm.is_model(name):
            raise ArchError(f"unknown timm model {name!r}; {_close(name, timm.list_models())}")
        return True
    if kind == "import":
        import_class(arch)
        return True
    known = torchvision_names()
    if arch not in known:
        raise ArchError(
            f"unknown architecture {arch!r}: not lenet, not a torchvision classification model, "
            f"not package.module:Class, not timm:<name>; {_close(arch, [LENET, *known])}"
        )
    return True


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ArchError(f"timm models need the timm package: {TIMM_HINT}") from None
    return timm


def import_class(arch: str) -> type:
    """The class an import path ``package.module:Class`` names (the module importable from
    the working directory or the Python path)."""
    import sys

    module_name, _, class_name = arch.partition(":")
    if "" not in sys.path:  # the study's folder, as `python -c` would see it
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ArchError(
            f"cannot import {module_name!r} for {arch!r} ({error}); put the module on PYTHONPATH "
            f"or in the folder snakemake runs in"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        names = [n for n, v in vars(module).items() if isinstance(v, type)]
        raise ArchError(f"{module_name} has no class {class_name!r}; {_close(class_name, names)}")
    return cls


def model_info(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> ModelInfo:
    """What an architecture needs, derived from the network (built once, on the meta device;
    torchvision's and timm's answers are kept in :func:`cache_file`, so that planning, every
    job's start and the status import no torch once a study has been planned)."""
    if arch == LENET:
        return ModelInfo(dataset="mnist", channels=1, pack="stacked")
    kwargs = json.dumps(dict(arch_kwargs or {}), sort_keys=True)
    kept = _cached(["info 2", arch, kwargs], lambda: vars(_derived_info(arch, kwargs)), source(arch))
    return ModelInfo(**kept)


def cache_file() -> Path:
    """Where derived answers are kept: $NORMSWEEP_CACHE, else ~/.cache/normsweep/archs.json
    ($XDG_CACHE_HOME honoured). Deleting it costs one torch import at the next planning."""
    if os.environ.get("NORMSWEEP_CACHE"):
        return Path(os.environ["NORMSWEEP_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "normsweep" / "archs.json"


def _library_versions(kind: str) -> str:
    """The versions an answer depends on: torchvision's (and timm's), read without importing them."""
    from importlib import metadata

    names = ["torchvision"] + (["timm"] if kind == "timm" else [])
    try:
        return ",".join(f"{n}=={metadata.version(n)}" for n in names)
    except metadata.PackageNotFoundError:
        return ""


#: This process's answers (what it read from the cache file or computed).
_MEMO: dict[str, Any] = {}


def _cached(key: list[str], compute: Any, kind: str) -> Any:
    """``compute()``'s JSON answer for ``key``, kept per library version; a user's own class
    (kind "import") is never kept (its code may change)."""
    versions = _library_versions(kind)
    if kind == "import" or not versions:
        return compute()
    name = json.dumps([versions, *key])
    if name in _MEMO:  # planning asks a model's questions several times: the file is read once
        return _MEMO[name]
    file = cache_file()
    try:
        kept = json.loads(file.read_text())
    except (OSError, ValueError):
        kept = {}
    if name in kept:
        _MEMO[name] = kept[name]
        return kept[name]
    value = _MEMO[name] = compute()
    try:
        kept[name] = value
        # a concurrent writer may win: its answers are the same
        write_text_atomic(file, json.dumps(kept, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only home: answers are computed each time
    return value


@functools.cache
def _derived_info(arch: str, kwargs_json: str) -> ModelInfo:
    import torch

    from .fold import first_conv

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
        from .nets import LeNet

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


WEIGHTS_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")  # IMAGENET1K_V1, DEFAULT: torchvision's enum names


def is_weights_name(arch: str, weights: str | None) -> bool:
    """Whether ``weights`` names a torchvision weights entry (not a file)."""
    return bool(weights) and source(arch) == "torchvision" and bool(WEIGHTS_NAME.match(str(weights)))


def torchvision_weights(arch: str, name: str) -> Any:
    from torchvision import models

    try:
        enum = models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ArchError(f"torchvision has no weights for {arch}") from None
    try:
        return enum[name]
    except KeyError:
        names = [w.name for w in enum] + ["DEFAULT"]
        raise ArchError(f"{arch} has no weights {name!r}; {_close(name, names)}") from None


def hub_checkpoints() -> Path:
    """Where torch keeps downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_location(arch: str, weights: str, sha256: str | None = None) -> tuple[Path, str | None, str]:
    """The file a weights entry is read from, the sha256 (or prefix) it must have, and where
    it comes from: a torchvision name -> torch's cache file of that entry (its name carries
    the first hex digits of its sha256, as torch.hub checks them); else a local file."""
    if is_weights_name(arch, weights):
        entry = torchvision_weights(arch, weights)
        file = Path(entry.url.rsplit("/", 1)[-1])
        found = re.search(r"-([a-f0-9]{6,})\.", file.name)
        return hub_checkpoints() / file, sha256 or (found.group(1) if found else None), entry.url
    return Path(weights).expanduser(), sha256, ""


def check_weights(arch: str, weights: str, sha256: str | None = None) -> Path:
    """The weights file, after checking it exists and its sha256 (when one is known); the
    error says which file to put where."""
    import hashlib

    file, expected, url = weights_location(arch, weights, sha256)
    if not file.is_file():
        if url:
            raise ArchError(
                f"weights {arch} {weights} are not in torch's cache: put {url} (downloaded "
                f"elsewhere) at {file} (the folder is $TORCH_HOME/hub/checkpoints); nothing is downloaded here"
            )
        raise ArchError(f"{file}: no such weights file; give a local state dict, a torchvision name, or null")
    if expected:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        if not digest.hexdigest().startswith(expected.lower()):
            raise ArchError(
                f"{file}: sha256 {digest.hexdigest()}, expected {expected}"
                + (
                    " (the file name's hash: a corrupt or other file)"
                    if url and not sha256
                    else " (weights_sha256)"
                )
            )
    return file
