"""Facts about the architecture a model entry names: where it comes from, whether it
exists, its weights (located and checked, never downloaded). Nothing here builds a network
(:mod:`normsweep.models.build` does; :mod:`normsweep.models.info` derives facts from it).

A model entry's key is the study's name for the model (folders, heatmap rows); its ``arch``
(default: the key) is one of

- ``lenet``: the PyTorch MNIST example's network (:class:`normsweep.models.lenet.LeNet`);
- a torchvision classification model (``torchvision.models.list_models(module=torchvision.models)``);
- ``package.module:Class``: the user's own ``nn.Module``, built with ``arch_kwargs``;
- ``timm:<name>`` (with timm installed), e.g. ``timm:vit_small_patch16_224.augreg_in21k_ft_in1k``.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normsweep.core.results import write_text_atomic

LENET = "lenet"
TIMM = "timm:"
#: How to get timm (an optional dependency: the core needs torchvision only).
TIMM_HINT = "install it with `bash scripts/setup_env.sh --timm` (or `pip install timm==1.0.31`)"


class ArchError(ValueError):
    """An architecture, its arguments or its weights that cannot work; the message says why."""


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
