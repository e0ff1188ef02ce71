"""The study's configuration: JSON-schema validation (with defaults) and the checks a schema
cannot express. Every error names the key and says how to fix it."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from normsweep.core.errors import DataError
from normsweep.data.classes import Head, check_head, folder_classes, plan_head
from normsweep.models.catalog import ArchError, arch_of, check_arch, kwargs_of
from normsweep.models.info import ModelInfo, model_info
from normsweep.models.published import preprocessing

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names its key."""


def validate_config(config: dict[str, Any], schema: str | Path = SCHEMA) -> dict[str, Any]:
    """Validate against the schema (filling its defaults in place), then check the values."""
    import jsonschema
    from snakemake.utils import validate

    for name, block in (config.get("models") or {}).items():
        for key, why in REMOVED_OPTUNA_KEYS.items():
            if isinstance(block, dict) and isinstance(block.get("optuna"), dict) and key in block["optuna"]:
                raise ConfigError(f"config key 'models.{name}.optuna.{key}': {why}")
    # `models: {lenet: null}` in an extra config file drops a model of config.yaml
    if isinstance(config.get("models"), dict):
        for name in [n for n, block in config["models"].items() if block is None]:
            del config["models"][name]
    apply_arch_defaults(config)
    try:
        validate(config, str(schema), set_default=True)
    except Exception as error:  # a WorkflowError whose text repeats the whole schema
        validator = jsonschema.validators.validator_for(_schema(schema))(_schema(schema))
        cause = jsonschema.exceptions.best_match(validator.iter_errors(config))
        if cause is None:
            raise ConfigError(str(error)) from None
        key = ".".join(str(p) for p in cause.absolute_path) or "(top level)"
        raise ConfigError(f"config key '{key}': {cause.message} (see {Path(schema).name})") from None
    fill_defaults(config, schema)
    for name, model in config["models"].items():
        check_model(name, model)
    return config


#: Optuna keys of the long-running workers that refinement in rounds replaced.
REMOVED_OPTUNA_KEYS = {
    "workers": "refinement runs in rounds of ordinary cell jobs now; use 'batch' (trials per round) instead",
    "grace_seconds": "refinement runs in rounds of ordinary cell jobs now: a killed trial is a killed cell, "
    "resumed by snakemake; remove the key",
    "prune": "pruning needs per-epoch reports inside the process that holds the study, and trials now train "
    "as separate cell jobs; remove the key (see the README, 'Refinement with Optuna')",
}

#: Cluster settings a user may give in the environment instead of the config.
CLUSTER_ENV = {
    "partition": "NORMSWEEP_SLURM_PARTITION",
    "account": "NORMSWEEP_SLURM_ACCOUNT",
    "gpu_model": "NORMSWEEP_SLURM_GPU_MODEL",
}


def fill_defaults(config: dict[str, Any], schema: str | Path = SCHEMA) -> None:
    """The schema's defaults for each model block (jsonschema does not fill them below
    ``additionalProperties``), and cluster settings left empty taken from the environment."""
    config.setdefault("compare_notebook", False)
    cluster = config.setdefault("cluster", {})
    for key, prop in _schema(schema)["properties"]["cluster"]["properties"].items():
        cluster.setdefault(key, prop["default"])
    for key, variable in CLUSTER_ENV.items():
        if not cluster[key]:
            cluster[key] = os.environ.get(variable, "")
    model_props = _schema(schema)["$defs"]["model"]["properties"]
    training_props = model_props["training"]["properties"]
    for model in config["models"].values():
        for key, prop in model_props.items():
            if "default" in prop:
                model.setdefault(key, copy.deepcopy(prop["default"]))
        for key, prop in training_props.items():
            model["training"].setdefault(key, prop["default"])
        for key, prop in model_props["convergence"]["properties"].items():
            model["convergence"].setdefault(key, prop["default"])
        if model.get("optuna"):
            for key, prop in model_props["optuna"]["properties"].items():
                if "default" in prop:
                    model["optuna"].setdefault(key, copy.deepcopy(prop["default"]))


def study_config(configfiles: list[str | Path], workdir: str | Path = ".") -> dict[str, Any]:
    """The config a run with these --configfile files uses, as snakemake builds it: the files
    merged in order, or the demo (config/config.yaml of ``workdir``) when none is given."""
    from snakemake.utils import update_config

    config: dict[str, Any] = {}
    for path in map(Path, configfiles) if configfiles else [Path(workdir) / "config" / "config.yaml"]:
        try:
            update_config(config, yaml.safe_load(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
    return validate_config(config)


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(config).__name__}")
    return validate_config(config)


def _schema(schema: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(schema).read_text())


def arch_key(name: str, block: Mapping[str, Any]) -> str:
    """The config key that names a model's architecture: its ``arch``, else the model's key."""
    return f"models.{name}.arch" if block.get("arch") else f"models.{name}"


def apply_arch_defaults(config: dict[str, Any]) -> None:
    """What a model's architecture and weights bring, before the schema fills its own defaults:
    pretrained weights' own preprocessing (torchvision's ``weights.transforms()``, timm's
    ``pretrained_cfg``) as the image size and interpolation unless the config gives them, and
    its mean/std as the reference cell ``own``, the baseline unless the config names another
    (only with weights: an architecture without them was published with nothing)."""
    for name, block in (config.get("models") or {}).items():
        if not isinstance(block, dict) or not isinstance(block.get("arch", ""), (str, type(None))):
            continue  # the schema names what is wrong
        arch = arch_of(name, block)
        weights = block.get("weights") if isinstance(block.get("weights"), str) else None
        try:
            check_arch(arch)
        except ArchError as error:
            raise ConfigError(f"config key '{arch_key(name, block)}': {error}") from None
        try:
            own = preprocessing(arch, weights)
        except ArchError as error:  # a weights name this architecture does not have
            raise ConfigError(f"config key 'models.{name}.weights': {error}") from None
        if own is None:
            continue
        image = block.setdefault("image", {})
        if isinstance(image, dict):
            image.setdefault("resize", own.resize)
            image.setdefault("crop", own.crop)
            if own.interpolation != "bilinear":
                image.setdefault("interpolation", own.interpolation)
        if not weights:  # an untrained network (timm's cfg without a weights file) has no own normalization
            continue
        references = block.setdefault("references", {})
        if isinstance(references, dict) and "own" not in references:
            values = {"mean": _compact(own.mean), "std": _compact(own.std)}  # timm's 0.5/0.5 is `half`'s cell
            block["references"] = {"own": values, **references}
        block.setdefault("baseline", "own")


def _compact(values: list[float]) -> float | list[float]:
    """One value for all channels when they are equal (the same cell as a scalar reference)."""
    return values[0] if len(set(values)) == 1 else values


def info_of(name: str, block: Mapping[str, Any]) -> ModelInfo:
    """What model entry ``name`` needs (derived from its network), or the config error."""
    try:
        return model_info(arch_of(name, block), kwargs_of(block))
    except ArchError as error:
        raise ConfigError(f"config key '{arch_key(name, block)}': {error}") from None


def model_head(name: str, block: Mapping[str, Any]) -> Head | None:
    """How an ImageFolder model's pretrained head meets its folder's classes (listed cheaply:
    the class folders of val/, else train/); None without weights, for MNIST, or before the
    folder has classes."""
    if not block.get("weights") or info_of(name, block).dataset == "mnist":
        return None
    classes = folder_classes(block["data"], "val") or folder_classes(block["data"], "train")
    return plan_head(classes, True, info_of(name, block).outputs) if classes else None


def check_model(name: str, model: Mapping[str, Any]) -> None:
    """Checks beyond the schema, for one model's block."""
    where = f"models.{name}"
    info = info_of(name, model)
    channels = info.channels
    head = model_head(name, model)
    if head is not None:
        try:
            check_head(head, model["training"]["epochs"], name, model["weights"], model["data"])
        except DataError as error:
            raise ConfigError(str(error)) from None
    if model.get("weights") and arch_of(name, model) == "lenet":
        raise ConfigError(f"config key '{where}.weights': LeNet has no pretrained weights; set it to null")
    if not model.get("grid") and not model.get("references"):
        raise ConfigError(f"config key '{where}': give a grid, references, or both: there is no cell to run")
    for axis in ("mean", "std") if model.get("grid") else ():
        spec = model["grid"][axis]
        key = f"{where}.grid.{axis}"
        if isinstance(spec, Mapping):
            if spec["num"] > 1 and spec["start"] >= spec["stop"]:
                raise ConfigError(
                    f"config key '{key}': start ({spec['start']}) must be below stop "
                    f"({spec['stop']}) when num > 1"
                )
            if axis == "std" and spec["start"] <= 0:
                raise ConfigError(
                    f"config key '{key}.start': {spec['start']} — the std axis is spaced "
                    f"geometrically and a std divides the input: use a value > 0"
                )
        elif axis == "std" and any(v <= 0 for v in spec):
            raise ConfigError(f"config key '{key}': every std must be > 0, got {spec}")
    references = model.get("references", {})
    for ref_name, ref in references.items():
        if isinstance(ref, Mapping):
            for axis in ("mean", "std"):
                value = ref[axis]
                values = value if isinstance(value, list) else [value]
                if len(values) not in (1, channels):
                    raise ConfigError(
                        f"config key '{where}.references.{ref_name}.{axis}': {len(values)} values, "
                        f"but {name} has {channels} channel(s): give 1 or {channels}"
                    )
                if axis == "std" and any(v <= 0 for v in values):
                    raise ConfigError(
                        f"config key '{where}.references.{ref_name}.std': every std must be > 0"
                    )
    if model.get("optuna"):
        from normsweep.study.refine import SearchSpace

        opt = model["optuna"]
        try:
            SearchSpace(*opt["mean"], *opt["std"])
        except ValueError as error:
            raise ConfigError(f"config key '{where}.optuna': {error}") from None
        if opt.get("per_channel") and channels != 3:
            raise ConfigError(f"config key '{where}.optuna.per_channel': {name} has {channels} channel(s)")
        if opt.get("box") and not model.get("grid"):
            raise ConfigError(
                f"config key '{where}.optuna.box': a box around the best grid cell needs a grid"
            )
    init = model.get("init_study")
    for axis in ("weight", "bias") if init else ():
        spec = init[axis]
        values = [spec["start"], spec["stop"]] if isinstance(spec, Mapping) else spec
        if any(v <= 0 for v in values):
            raise ConfigError(
                f"config key '{where}.init_study.{axis}': factors are spaced geometrically: use values > 0"
            )
    baseline = model.get("baseline")
    if baseline is not None and baseline not in references:
        raise ConfigError(
            f"config key '{where}.baseline': {baseline!r} is not one of the references "
            f"({', '.join(references) or 'none defined'}); add it under {where}.references"
        )
    training = model.get("training", {})
    for key in ("train_subset", "test_subset"):
        if training.get(key) is not None and training[key] < 1:
            raise ConfigError(f"config key '{where}.training.{key}': must be >= 1 or null")
    data = Path(model["data"])
    if info.dataset != "mnist":
        if model.get("download"):
            raise ConfigError(
                f"config key '{where}.download': only MNIST can be fetched; give an ImageFolder"
            )
        if not data.is_dir():
            raise ConfigError(
                f"config key '{where}.data': folder {data} does not exist; point it at an "
                f"ImageFolder with train/<class>/ and val/<class>/"
            )
    elif not model.get("download", False) and not data.exists():
        raise ConfigError(
            f"config key '{where}.data': folder {data} does not exist; point it at a folder "
            f"holding MNIST/raw/*.gz, or set {where}.download: true to fetch MNIST there"
        )


def image_splits(model_config: Mapping[str, Any]) -> tuple[str, ...]:
    """The ImageFolder splits a model's cells read: val/ alone when nothing trains (epochs: 0)
    and no cell uses the training set's statistics (a `dataset` reference); else both."""
    uses_stats = any(ref == "dataset" for ref in (model_config.get("references") or {}).values())
    if model_config["training"]["epochs"] == 0 and not uses_stats:
        return ("val",)
    return ("train", "val")
