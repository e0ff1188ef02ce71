"""What a run is, as plain values: the cells it trains (:class:`CellSpec`), its training knobs
(:class:`TrainConfig`) and the fingerprint a checkpoint carries of both.

Torch-free, so that planning (the workflow, ``plan.py``) can read the knobs without importing
torch. The engine (:mod:`normsweep.training.engine`) runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normsweep.core import cells as cellnames
from normsweep.core.errors import PackError

#: Training keys that say how a job runs, not what it computes: changing them neither retrains
#: a finished cell nor discards a checkpoint.
EXECUTION_KEYS = ("threads", "device", "checkpoint_minutes", "channels_last", "cudnn_benchmark", "compile")
#: The subpackages whose code computes a cell: the runner and everything below it (a test
#: checks that the runner imports nothing else). A checkpoint's fingerprint hashes their
#: modules only, so editing the study, the analysis or the monitoring discards no checkpoint.
TRAINING_SUBPACKAGES = ("core", "data", "models", "training")


@dataclass
class TrainConfig:
    """Every knob of a training run, with the notebook's values as defaults."""

    epochs: int = 30
    batch_size: int = 64
    test_batch_size: int = 1000
    lr: float = 1.0
    device: str = "auto"  # "auto": CUDA when there is one, else the CPU
    threads: int | None = None  # CPU threads for torch; None leaves torch's default
    deterministic: bool = False
    checkpoint_minutes: float | None = None  # also save inside an epoch this often (None: at its end only)
    precision: str = "fp32"  # fp32 | tf32 | bf16 (normsweep.training.devices.precision)
    # how it computes on the device (normsweep.training.devices.Execution): auto | true | false
    channels_last: str | bool = "auto"
    cudnn_benchmark: str | bool = "auto"
    compile: bool = False


@dataclass
class CellSpec:
    """What one cell trains: the model and the normalization values (None: no normalization)."""

    model: str
    dataset: str
    mean_label: str
    std_label: str
    mean: list[float] | None
    std: list[float] | None
    seed: int
    checkpoint: Path | None = None
    num_classes: int = 10
    weights: str | None = (
        None  # a local weights file or a torchvision weights name (normsweep.models.catalog)
    )
    weights_sha256: str | None = None
    arch: str = ""  # the architecture (normsweep.models.catalog); "": the model's name
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init_weight: float = 1.0  # factors on conv1's initial weights and biases (the init study)
    init_bias: float = 1.0
    data_key: str = ""  # what the data is: folder, image size, subsets (runner.cell_spec)
    data_version: str = ""  # the version of its content the data check recorded (normsweep.core.provenance)
    preprocessing: dict[str, Any] | None = None  # the weights' own (published.Preprocessing), to record
    head: str = ""  # how the network's classifier meets the folder's classes (normsweep.data.classes.Head)
    outputs: int = 0  # the network's outputs (0: num_classes); the weights' 1000 for a mapped head
    class_map: list[int] | None = None  # mapped: each folder class's output
    predict_over: str = "all"  # mapped: a prediction over all outputs, or over the folder's classes

    @property
    def architecture(self) -> str:
        return self.arch or self.model

    @property
    def member(self) -> str:
        """The cell's name inside a pack (its labels)."""
        return f"{self.mean_label}/{self.std_label}"


def same_start(specs: Sequence[CellSpec]) -> None:
    """Members of a run share one start: model, seed, classes, weights, initialization."""

    def start(spec: CellSpec) -> tuple:
        return (spec.model, spec.architecture, repr(spec.arch_kwargs), spec.seed, spec.num_classes, spec.weights,
                spec.init_weight, spec.init_bias, spec.outputs, spec.class_map, spec.predict_over)  # fmt: skip

    if not specs:
        raise PackError("a pack holds at least one cell")
    if any(start(spec) != start(specs[0]) for spec in specs):
        raise PackError("a pack holds cells of one model and one seed with the same start")


def resolve_normalization(
    mean_label: str, std_label: str, stats_mean: Sequence[float] | None, stats_std: Sequence[float] | None
) -> tuple[list[float] | None, list[float] | None]:
    """The values a cell's labels stand for; ``dataset`` takes the computed statistics."""
    mean = cellnames.parse_value(mean_label)
    std = cellnames.parse_value(std_label)
    if mean is None:
        return None, None
    if mean == cellnames.DATASET:
        if stats_mean is None or stats_std is None:
            raise ValueError("the 'dataset' cell needs the data set statistics (stats.json)")
        return [float(v) for v in stats_mean], [float(v) for v in stats_std]

    def as_list(value: object) -> list[float]:
        return [float(v) for v in value] if isinstance(value, tuple) else [float(value)]  # type: ignore[arg-type]

    return as_list(mean), as_list(std)


def fingerprint(spec: CellSpec, config: TrainConfig) -> dict[str, Any]:
    """What made a checkpoint: the cell's values, its data, its training knobs and the training
    code. A checkpoint is resumed only when all of it is the same; otherwise the cell starts
    afresh (its old optimizer state and learning rate would not belong to the new settings)."""
    from normsweep.core.results import package_modules, source_hash

    knobs = {k: v for k, v in vars(config).items() if k not in EXECUTION_KEYS}  # how it runs: not what it is
    return {
        "model": spec.model,
        "arch": [spec.architecture, spec.arch_kwargs],
        "mean": spec.mean,
        "std": spec.std,
        "seed": spec.seed,
        "num_classes": spec.num_classes,
        "weights": spec.weights,
        "weights_sha256": spec.weights_sha256,
        "init": [spec.init_weight, spec.init_bias],
        "data": spec.data_key,
        "data_version": spec.data_version,  # a checkpoint of other data is never resumed
        **(
            {"head": [spec.head, spec.outputs, spec.class_map, spec.predict_over]}
            if spec.head == "mapped"
            else {}
        ),
        "training": knobs,
        "code": source_hash(package_modules(*TRAINING_SUBPACKAGES)),
    }
