"""Training of one cell: the plain loops of the PyTorch MNIST example over batches of a
:class:`normsweep.batches.Split` (held on the device, or streamed from prepared shards).

The normalization ``(x - mean) / std`` is one tensor operation per batch on the device: no
per-sample PIL transform, no DataLoader. A checkpoint is saved after every epoch and, with
``checkpoint_minutes``, inside an epoch too (with the position in the epoch's batch order), so
that an epoch longer than a job's time limit still finishes over several attempts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import ReduceLROnPlateau

from . import cells as cellnames
from . import tensorfile
from .batches import Split
from .config import EXECUTION_KEYS
from .models import build_model, model_spec, scale_first_layer
from .results import STATUS_DIVERGED, STATUS_OK, CellResult, EpochRecord, package_versions

log = logging.getLogger("normsweep.train")


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


def normalize(
    images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> torch.Tensor:
    """``(x - mean) / std`` per channel on an N x C x H x W tensor; ``None`` leaves x as is."""
    if mean is None or std is None:
        return images
    channels = images.shape[1]
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    if mean_t.shape[0] not in (1, channels) or std_t.shape[0] not in (1, channels):
        raise ValueError(
            f"mean {list(mean)} / std {list(std)}: give one value or one per channel ({channels} channels)"
        )
    return (images - mean_t) / std_t


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def set_determinism(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@dataclass
class Position:
    """Where a run is inside an epoch: batches done, their summed loss, and the shuffle
    generator's state at the epoch's start (which gives the epoch's batch order again)."""

    batch: int
    loss_sum: float | torch.Tensor  # a tensor on the device while training (no sync per batch)
    shuffle_state: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint: the loss sum as a number (a cell) or a list (a pack)."""
        loss_sum = torch.as_tensor(self.loss_sum).tolist()
        return {"batch": self.batch, "loss_sum": loss_sum, "shuffle_state": self.shuffle_state}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Position | None:
        if not raw:
            return None
        loss = raw["loss_sum"]  # one value (a cell) or one per member (a pack)
        loss_sum = float(loss) if isinstance(loss, int | float) else torch.tensor(loss, dtype=torch.float64)
        return cls(int(raw["batch"]), loss_sum, raw["shuffle_state"].cpu())


class Every:
    """Due every ``minutes`` (0: after every batch; None: never) since the last time it was due."""

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else 60.0 * minutes
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.seconds is None or time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def train_epoch(
    model: torch.nn.Module,
    data: Split,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    on_step: Callable[[torch.Tensor], None] | None = None,
    norm: tuple[Sequence[float] | None, Sequence[float] | None] = (None, None),
    position: Position | None = None,
    save: Callable[[Position], None] | None = None,
) -> float:
    """One pass over shuffled training data, normalized by ``norm`` (mean, std); returns the
    mean batch loss (NaN if diverged). From ``position`` when resuming inside the epoch;
    ``save(position)`` is offered the position after every batch (it decides whether to save)."""
    model.train()
    device = next(model.parameters()).device
    if position is None:
        position = Position(0, 0.0, generator.get_state())
    else:
        generator.set_state(position.shuffle_state)
    order = torch.randperm(len(data), generator=generator)
    loss_sum = torch.tensor(position.loss_sum, device=device)
    n_batches = position.batch
    for images, labels in data.batches(order, batch_size, start=position.batch):
        optimizer.zero_grad()
        output = model(normalize(images, *norm))
        loss = F.nll_loss(output, labels)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        n_batches += 1
        if save is not None:
            save(Position(n_batches, loss_sum, position.shuffle_state))
        if on_step is not None:  # e.g. a test comparing with a pack, step by step
            on_step(loss.detach())
    return float(loss_sum) / max(n_batches, 1)  # one device sync per epoch


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    data: Split,
    batch_size: int,
    norm: tuple[Sequence[float] | None, Sequence[float] | None] = (None, None),
    predicted: list[torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Test accuracy and mean test loss, the test data normalized by ``norm`` (mean, std);
    each batch's predicted classes appended to ``predicted`` when it is a list."""
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for images, labels in data.batches(None, batch_size):
        output = model(normalize(images, *norm))
        loss_sum += F.nll_loss(output, labels, reduction="sum").double()
        guess = output.argmax(dim=1)
        correct += (guess == labels).sum()
        if predicted is not None:
            predicted.append(guess.to(torch.int16))
    n = max(len(data), 1)
    return int(correct) / n, float(loss_sum) / n


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
    weights: str | None = None  # a local weights file or a torchvision weights name (normsweep.catalog)
    weights_sha256: str | None = None
    arch: str = ""  # the architecture (normsweep.catalog); "": the model's name
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    init_weight: float = 1.0  # factors on conv1's initial weights and biases (the init study)
    init_bias: float = 1.0
    data_key: str = ""  # what the data is: folder, image size, subsets (runner.cell_spec)
    preprocessing: dict[str, Any] | None = None  # the weights' own (catalog.Preprocessing), to record

    @property
    def architecture(self) -> str:
        return self.arch or self.model


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


def initial_model(spec: CellSpec, device: torch.device) -> torch.nn.Module:
    """The cell's network at its start, built from torch's generator as ``set_determinism``
    left it: a one-cell run and every member of a pack start from these same weights."""
    model = build_model(
        spec.architecture, spec.num_classes, spec.weights, spec.weights_sha256, spec.arch_kwargs
    )
    return scale_first_layer(model, spec.init_weight, spec.init_bias).to(device)


def fingerprint(spec: CellSpec, config: TrainConfig) -> dict[str, Any]:
    """What made a checkpoint: the cell's values, its data, its training knobs and the training
    code. A checkpoint is resumed only when all of it is the same; otherwise the cell starts
    afresh (its old optimizer state and learning rate would not belong to the new settings)."""
    from .results import code_version

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
        "training": knobs,
        "code": code_version()["code"],
    }


def stale_because(saved: Any, now: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """The keys in which a checkpoint's fingerprint differs from the run's (all of them when
    the checkpoint has none: made by an older version). A pack's fingerprint is a list, one
    per member: the keys that differ for any member."""
    if saved is None:
        return ["(no fingerprint: an older version's checkpoint)"]
    if isinstance(now, list):
        if not isinstance(saved, list) or len(saved) != len(now):
            return ["(the members)"]
        return sorted({key for old, new in zip(saved, now, strict=True) for key in stale_because(old, new)})
    keys = sorted(set(saved) | set(now))
    changed = [k for k in keys if saved.get(k) != now.get(k)]
    if "training" in changed:  # name the knob
        a, b = saved.get("training") or {}, now.get("training") or {}
        changed.remove("training")
        changed += [f"training.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return changed


def usable_checkpoint(
    path: Path | None,
    now: dict[str, Any] | list[dict[str, Any]],
    device: torch.device,
    what: str,
    validate: Callable[[dict], None] | None = None,
) -> dict | None:
    """The checkpoint's state when it was made by this run's settings; else None, logged with
    the settings that changed (the stale file is left for the next save to replace).
    ``validate(state)`` may refuse a checkpoint outright (it raises) before the comparison."""
    if path is None or not path.exists():
        return None
    state = tensorfile.load(path, what, map_location=device)
    if validate is not None:
        validate(state)
    changed = stale_because(state.get("fingerprint"), now)
    if changed:
        log.warning(
            "%s %s was made with other settings (%s changed): starting afresh", what, path, ", ".join(changed)
        )
        return None
    return state


def epoch_message(record: EpochRecord, epochs: int) -> str:
    """A cell's log line for one epoch (scripts/status.py reads it back): the same for a cell
    trained alone and for a member of a pack."""
    if not math.isfinite(record.train_loss):
        return f"epoch {record.epoch}/{epochs}: training loss is {record.train_loss}: diverged, stopping"
    return (
        f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f}, test loss {record.test_loss:.4f}, "
        f"test accuracy {record.test_accuracy:.4f}, lr {record.lr:.3g}, {record.seconds:.1f} s"
    )


def train_cell(
    spec: CellSpec,
    train: Split,
    test: Split,
    config: TrainConfig,
    on_step: Callable[[torch.Tensor], None] | None = None,
) -> CellResult:
    """Train one cell from scratch (or from its checkpoint) and return its result.

    A NaN or infinite training loss ends the run with status ``diverged`` and NaN accuracy:
    a result, not an exception.
    """
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    model_info = model_spec(spec.architecture)
    set_determinism(spec.seed, config.deterministic)

    train_d, test_d = train.to(device), test.to(device)
    norm = (spec.mean, spec.std)

    model = initial_model(spec, device)
    optimizer = model_info.make_optimizer(model.parameters(), config.lr)
    # the MNIST example's schedule; a scheduler that never steps keeps SGD's rate for ResNet18
    scheduler = ReduceLROnPlateau(optimizer, mode="max")
    shuffle = torch.Generator().manual_seed(spec.seed)

    history: list[EpochRecord] = []
    first_epoch, position = 1, None
    made_by = fingerprint(spec, config)
    state = usable_checkpoint(spec.checkpoint, made_by, device, "checkpoint")
    if state is not None:
        first_epoch, history = _restore(state, model, optimizer, scheduler, shuffle)
        position = Position.from_dict(state.get("position"))
        inside = f", {position.batch} batches into epoch {first_epoch}" if position else ""
        log.info("resumed from %s after epoch %d%s", spec.checkpoint, first_epoch - 1, inside)
    every = Every(config.checkpoint_minutes)

    status = STATUS_OK
    for epoch in range(first_epoch, config.epochs + 1):
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]

        def save_inside(at: Position, epoch: int = epoch) -> None:
            if spec.checkpoint is not None and every.due():
                _save_checkpoint(spec.checkpoint, epoch - 1, history, model, optimizer, scheduler, shuffle,
                                 made_by, at)  # fmt: skip

        train_loss = train_epoch(model, train_d, optimizer, config.batch_size, shuffle, on_step, norm, position,
                                 save_inside)  # fmt: skip
        position = None
        if not math.isfinite(train_loss):
            status = STATUS_DIVERGED
            history.append(EpochRecord(epoch, math.nan, math.nan, train_loss, lr, time.perf_counter() - tic))
            log.warning("%s", epoch_message(history[-1], config.epochs))
            break
        accuracy, test_loss = evaluate(model, test_d, config.test_batch_size, norm)
        if model_info.plateau:
            scheduler.step(accuracy)
        seconds = time.perf_counter() - tic
        history.append(EpochRecord(epoch, accuracy, test_loss, train_loss, lr, seconds))
        log.info("%s", epoch_message(history[-1], config.epochs))
        if spec.checkpoint is not None and epoch < config.epochs:
            _save_checkpoint(spec.checkpoint, epoch, history, model, optimizer, scheduler, shuffle, made_by)

    predicted: list[torch.Tensor] = []
    if config.epochs == 0:  # evaluation only: the per-image predictions are kept (McNemar)
        accuracy, test_loss = evaluate(model, test_d, config.test_batch_size, norm, predicted)
        history.append(
            EpochRecord(0, accuracy, test_loss, math.nan, config.lr, time.perf_counter() - started)
        )

    result = cell_result(
        spec, status, history, config, len(train), len(test), time.perf_counter() - started, device
    )
    if predicted:
        result.predictions = torch.cat(predicted).cpu().numpy()
    return result


def cell_result(
    spec: CellSpec,
    status: str,
    history: list[EpochRecord],
    config: TrainConfig,
    n_train: int,
    n_test: int,
    wall_seconds: float,
    device: torch.device,
    pack: str = "",
    pack_size: int = 1,
) -> CellResult:
    """A cell's result from its run: a diverged cell has no final accuracy (NaN)."""
    accuracies = [r.test_accuracy for r in history]
    return CellResult(
        model=spec.model,
        arch=spec.architecture,
        weights=spec.weights or "",
        preprocessing=spec.preprocessing,
        dataset=spec.dataset,
        mean_label=spec.mean_label,
        std_label=spec.std_label,
        mean=spec.mean,
        std=spec.std,
        seed=spec.seed,
        status=status,
        final_accuracy=math.nan if status == STATUS_DIVERGED else accuracies[-1],
        best_accuracy=max((a for a in accuracies if math.isfinite(a)), default=math.nan),
        epochs_requested=config.epochs,
        n_train=n_train,
        n_test=n_test,
        batch_size=config.batch_size,
        test_batch_size=config.test_batch_size,
        lr=config.lr,
        wall_seconds=wall_seconds,
        device=device.type,
        device_name=device_name(device),
        epochs=history,
        versions=package_versions(),
        init_weight=spec.init_weight,
        init_bias=spec.init_bias,
        pack=pack,
        pack_size=pack_size,
        num_classes=spec.num_classes,
        data=spec.data_key,
    )


def rng_state(shuffle: torch.Generator) -> dict:
    """The random state a resumed run needs: the batch order's and torch's (CPU and CUDA)."""
    return {
        "shuffle_rng": shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict, shuffle: torch.Generator) -> None:
    shuffle.set_state(state["shuffle_rng"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def save_atomic(path: Path, state: dict) -> None:
    """torch.save to a temporary file beside ``path``, then rename: never half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _save_checkpoint(
    path: Path,
    epoch: int,
    history: list[EpochRecord],
    model,
    optimizer,
    scheduler,
    shuffle,
    made_by: dict,
    position: Position | None = None,
) -> None:
    """Everything needed to resume after ``epoch`` (and ``position`` batches into the next),
    and what made it; written atomically."""
    state = {
        "fingerprint": made_by,
        "epoch": epoch,
        "position": position.to_dict() if position is not None else None,
        "history": [vars(r) for r in history],
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        **rng_state(shuffle),
    }
    save_atomic(path, state)


def _restore(state: dict, model, optimizer, scheduler, shuffle) -> tuple[int, list[EpochRecord]]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state, shuffle)
    return state["epoch"] + 1, [EpochRecord(**r) for r in state["history"]]
