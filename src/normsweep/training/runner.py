"""One cell from start to file: load its data, resolve its normalization, train, write."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from normsweep.core.provenance import record_version
from normsweep.core.results import CellResult, EpochRecord, write_predictions, write_result
from normsweep.core.spec import CellSpec, TrainConfig, resolve_normalization
from normsweep.data import mnist
from normsweep.data.batches import Split, open_splits, relabeled
from normsweep.data.classes import Head, check_head, plan_head
from normsweep.models.build import model_spec
from normsweep.models.catalog import arch_of, kwargs_of
from normsweep.models.info import model_info
from normsweep.models.published import preprocessing
from normsweep.training.checkpoint import drop_after_result
from normsweep.training.engine import Members, OnEpoch, OnStep, run
from normsweep.training.members.eval_only import Evaluation
from normsweep.training.members.separate import Separate
from normsweep.training.members.stacked import Stacked
from normsweep.training.plateau import epoch_message

log = logging.getLogger("normsweep.training.runner")


def train_config(arch: str, training: Mapping[str, Any]) -> TrainConfig:
    """The training knobs of a model's config block (subset sizes are data, not training);
    no learning rate means the architecture's own (normsweep.models.build.model_spec)."""
    known = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in training.items() if k in known and v is not None})
    if training.get("lr") is None:
        config.lr = model_spec(arch).default_lr
    return config


def kind_of(specs: Sequence[CellSpec], config: TrainConfig) -> type[Members]:
    """How the engine runs these cells: evaluation only (``epochs: 0``: one network, K
    normalizations), a stack of LeNets under vmap (a pack of a stackable network), or separate
    networks (a cell alone, or a pack of any other network)."""
    if config.epochs == 0:
        return Evaluation
    if len(specs) > 1 and model_info(specs[0].architecture, specs[0].arch_kwargs).pack == "stacked":
        return Stacked
    return Separate


def train_cells(
    specs: Sequence[CellSpec],
    train: Split,
    test: Split,
    config: TrainConfig,
    checkpoint: Path | None = None,
    pack_id: str = "",
    on_epoch: OnEpoch | None = None,
    on_step: OnStep | None = None,
) -> list[CellResult]:
    """The cells ``specs`` (one model, one seed) run by the engine as the kind they need; one
    result each, in order (``K = 1``: a cell alone)."""
    return run(kind_of(specs, config), specs, train, test, config, checkpoint, pack_id, on_epoch, on_step)


def load_splits(
    model: str, model_config: Mapping[str, Any], data_folder: str | Path | None = None
) -> tuple[Split, Split, int]:
    """A cell's training and test data and the number of classes, from what the data check
    recorded in ``data_folder`` (prepared ImageFolder shards are streamed, not loaded)."""
    training = model_config.get("training", {})
    subsets = (training.get("train_subset"), training.get("test_subset"))
    prefetch = max(2, int(training.get("threads") or 1))
    return open_splits(model_config["data"], data_folder, subsets, prefetch)


def head_of(model: str, model_config: Mapping[str, Any], classes: list[str]) -> Head:
    """How the model's classifier meets the data's ``classes`` (normsweep.data.classes); an
    evaluation-only study of a random head is refused."""
    arch = arch_of(model, model_config)
    outputs = model_info(arch, kwargs_of(model_config)).outputs
    head = plan_head(classes, bool(model_config.get("weights")), outputs)
    epochs = int(model_config.get("training", {}).get("epochs", 1))
    check_head(head, epochs, model, str(model_config.get("weights")), model_config["data"])
    return head


def cell_data(
    model: str, model_config: Mapping[str, Any], data_folder: str | Path | None
) -> tuple[Split, Split, int, Head]:
    """A cell's data, its class count and its head; with a mapped head predicted over all the
    weights' outputs, the labels are the weights' indices of the folder's classes."""
    train, test, num_classes = load_splits(model, model_config, data_folder)
    classes = getattr(test, "classes", None) or [str(i) for i in range(num_classes)]  # MNIST: digits
    head = head_of(model, model_config, list(classes))
    if head.class_map is not None and model_config.get("predict_over", "all") == "all":
        train, test = relabeled(train, head.class_map), relabeled(test, head.class_map)
    return train, test, num_classes, head


def cell_spec(
    model: str,
    mean_label: str,
    std_label: str,
    seed: int,
    model_config: Mapping[str, Any],
    stats: mnist.DatasetStats | None,
    num_classes: int,
    checkpoint: str | Path | None = None,
    init: tuple[float, float] = (1.0, 1.0),
    head: Head | None = None,
    data_version: str = "",
) -> CellSpec:
    """What one cell trains, its labels resolved to values (``dataset``: the statistics);
    ``head``: how its classifier meets the classes (None: a new head, as without weights)."""
    mean, std = resolve_normalization(
        mean_label, std_label, stats.mean if stats else None, stats.std if stats else None
    )
    arch, kwargs = arch_of(model, model_config), kwargs_of(model_config)
    return CellSpec(
        model=model,
        dataset=model_info(arch, kwargs).dataset,
        mean_label=mean_label,
        std_label=std_label,
        mean=mean,
        std=std,
        seed=int(seed),
        checkpoint=Path(checkpoint) if checkpoint else None,
        num_classes=num_classes,
        weights=model_config.get("weights"),
        weights_sha256=model_config.get("weights_sha256"),
        init_weight=float(init[0]),
        init_bias=float(init[1]),
        data_key=data_identity(model, model_config),
        data_version=data_version,
        arch=arch,
        arch_kwargs=kwargs,
        preprocessing=image_record(arch, model_config),
        head=head.kind if head else "",
        outputs=head.outputs if head and head.kind in ("mapped", "kept") else 0,
        class_map=list(head.class_map) if head and head.class_map else None,
        predict_over=str(model_config.get("predict_over") or "all"),
    )


def image_record(arch: str, model_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a cell's images were made with (resize, crop, interpolation) and, for pretrained
    weights that have them, their own preprocessing (normsweep.models.published.Preprocessing)."""
    image = model_config.get("image")
    if model_info(arch, kwargs_of(model_config)).dataset == "mnist" or not image:
        return None
    own = preprocessing(arch, model_config.get("weights"))
    return {
        "resize": image["resize"],
        "crop": image["crop"],
        "interpolation": image.get("interpolation") or "bilinear",
        "own": own.to_dict() if own and model_config.get("weights") else None,
    }


def data_identity(model: str, model_config: Mapping[str, Any]) -> str:
    """What a cell's data is, for its checkpoint's fingerprint and its result: the data folder
    and image size (the data key of the workflow's folders) and the subsets it trains and
    tests on (an ImageFolder's: a class-stratified sample with a fixed seed, the same for
    every cell; MNIST's: its first images, which are in random order)."""
    from normsweep.core.cells import data_key
    from normsweep.data.batches import SUBSET_SEED

    training = model_config.get("training", {})
    images = model_info(arch_of(model, model_config), kwargs_of(model_config)).dataset != "mnist"
    subsets = f"train {training.get('train_subset')}, test {training.get('test_subset')}"
    sampled = any(training.get(k) for k in ("train_subset", "test_subset"))
    if images and sampled:
        subsets += f" (class-stratified samples, seed {SUBSET_SEED})"
    return f"{data_key(model_config, images)}, {subsets}"


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
) -> CellResult:
    """Train one cell and write its result atomically; the checkpoint goes once it is written."""
    stats = mnist.DatasetStats.from_json(stats_path) if stats_path else None
    train, test, num_classes, head = cell_data(
        model, model_config, Path(stats_path).parent if stats_path else None
    )
    version = record_version(Path(stats_path).parent / "files.json") if stats_path else ""
    spec = cell_spec(
        model, mean_label, std_label, seed, model_config, stats, num_classes, checkpoint, init, head, version
    )
    mean, std = spec.mean, spec.std
    log.info(
        "cell %s mean=%s std=%s seed=%s: %d train / %d test images",
        model,
        mean,
        std,
        seed,
        len(train),
        len(test),
    )
    config = train_config(spec.architecture, model_config.get("training", {}))

    def log_epoch(member: int, record: EpochRecord) -> None:
        level = logging.INFO if math.isfinite(record.train_loss) else logging.WARNING
        log.log(level, "%s", epoch_message(record, config.epochs))

    (result,) = train_cells([spec], train, test, config, spec.checkpoint, on_epoch=log_epoch)
    if result.predictions is not None:  # an evaluation cell: its per-image predictions first
        write_predictions(output, result.predictions, test.labels.cpu().numpy())
    write_result(output, result)
    drop_after_result(spec.checkpoint)
    log.info(
        "cell done: status %s, final accuracy %.4f, %.1f s",
        result.status,
        result.final_accuracy,
        result.wall_seconds,
    )
    return result


def run_pack(
    model: str,
    members: Sequence[tuple[str, str]],
    seed: int,
    model_config: Mapping[str, Any],
    outputs: Sequence[str | Path],
    logs: Sequence[str | Path],
    stats_path: str | Path,
    checkpoint: str | Path | None,
    pack_id: str,
) -> list[CellResult]:
    """Train the cells ``members`` ((mean label, std label) of one seed) as one pack; each
    writes its own result (``outputs``) and its own per-epoch log lines (``logs``), as a cell
    trained alone does. The pack's checkpoint goes once every result is written."""
    stats = mnist.DatasetStats.from_json(stats_path)
    train, test, num_classes, head = cell_data(model, model_config, Path(stats_path).parent)
    version = record_version(Path(stats_path).parent / "files.json")
    specs = [cell_spec(model, m, s, seed, model_config, stats, num_classes, head=head, data_version=version)
             for m, s in members]  # fmt: skip
    config = train_config(specs[0].architecture, model_config.get("training", {}))
    for path in logs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def log_epoch(member: int, record: EpochRecord) -> None:
        level = "INFO" if math.isfinite(record.train_loss) else "WARNING"
        with open(logs[member], "a") as handle:
            handle.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} normsweep.training.engine {level} {epoch_message(record, config.epochs)}"
                f" (pack {pack_id} of {len(members)} cells)\n"
            )

    log.info("pack %s: %d cells of %s, seed %s, %d train / %d test images", pack_id, len(specs), model, seed,
             len(train), len(test))  # fmt: skip
    saved = Path(checkpoint) if checkpoint else None
    results = train_cells(specs, train, test, config, saved, pack_id, on_epoch=log_epoch)
    for result, output in zip(results, outputs, strict=True):
        if result.predictions is not None:
            write_predictions(output, result.predictions, test.labels.cpu().numpy())
        write_result(output, result)
    drop_after_result(saved)
    log.info("pack %s done: %d cells, %d diverged, %.1f s", pack_id, len(results),
             sum(r.status != "ok" for r in results), results[0].wall_seconds if results else 0.0)  # fmt: skip
    return results
