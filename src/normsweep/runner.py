"""One cell from start to file: load its data, resolve its normalization, train, write."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from . import data
from .catalog import model_info
from .results import CellResult, EpochRecord, write_result
from .train import CellSpec, TensorData, TrainConfig, resolve_normalization, train_cell

log = logging.getLogger("normsweep.runner")


def train_config(training: Mapping[str, Any]) -> TrainConfig:
    """The training knobs of a model's config block (subset sizes are data, not training)."""
    known = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in training.items() if k in known})


def load_splits(model: str, model_config: Mapping[str, Any]) -> tuple[TensorData, TensorData]:
    training = model_config.get("training", {})
    root = model_config["data"]
    dataset = model_info(model).dataset
    if dataset != "mnist":
        raise ValueError(f"model {model!r}: data set {dataset!r} has no loader")
    train = data.load_mnist(root, train=True, limit=training.get("train_subset"))
    test = data.load_mnist(root, train=False, limit=training.get("test_subset"))
    return TensorData.from_uint8(train.images, train.labels), TensorData.from_uint8(test.images, test.labels)


def run_cell(
    model: str,
    mean_label: str,
    std_label: str,
    seed: int,
    model_config: Mapping[str, Any],
    output: str | Path,
    stats_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    init: tuple[float, float] = (1.0, 1.0),
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> CellResult:
    """Train one cell and write its result atomically; the checkpoint goes once it is written."""
    stats = data.DatasetStats.from_json(stats_path) if stats_path else None
    mean, std = resolve_normalization(
        mean_label, std_label, stats.mean if stats else None, stats.std if stats else None
    )
    train, test = load_splits(model, model_config)
    spec = CellSpec(
        model=model,
        dataset=model_info(model).dataset,
        mean_label=mean_label,
        std_label=std_label,
        mean=mean,
        std=std,
        seed=int(seed),
        checkpoint=Path(checkpoint) if checkpoint else None,
        init_weight=float(init[0]),
        init_bias=float(init[1]),
    )
    log.info("cell %s mean=%s std=%s seed=%s: %d train / %d test images", model, mean, std, seed, len(train), len(test))
    result = train_cell(spec, train, test, train_config(model_config.get("training", {})), on_epoch)
    write_result(output, result)
    if spec.checkpoint is not None:
        spec.checkpoint.unlink(missing_ok=True)
    log.info("cell done: status %s, final accuracy %.4f, %.1f s", result.status, result.final_accuracy, result.wall_seconds)
    return result
