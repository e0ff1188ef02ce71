"""The one training engine: every cell, alone or in a pack, trained or evaluated, runs here.

:func:`run` for K members (cells of one model and one seed that share a start; K = 1 alone)::

    resume from a usable checkpoint, else build the members
    for epoch in remaining epochs:
        for batch in the seed's order, from the saved position:
            members.step(batch)              # a diverged member leaves with status "diverged"
            save every checkpoint_minutes; on a scheduler's signal save and raise Interrupted
        members.evaluate(test)  ->  epoch records, the plateau steps the learning rate
        save the checkpoint
    write one result per member

A kind of run differs only in how members are built, stepped and evaluated: a :class:`Members`
subclass in :mod:`normsweep.training.members` (separate, stacked, eval_only).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from normsweep.core.errors import Interrupted, PackError
from normsweep.core.results import STATUS_DIVERGED, CellResult, EpochRecord, package_versions
from normsweep.core.signals import Stop
from normsweep.core.spec import CellSpec, TrainConfig, fingerprint, same_start
from normsweep.data.batches import Split, left_out
from normsweep.models.build import build_model, model_spec, scale_first_layer
from normsweep.training.checkpoint import (
    Every,
    Position,
    restore_rng,
    rng_state,
    save_atomic,
    usable_checkpoint,
)
from normsweep.training.devices import (
    PLAIN,
    Execution,
    autocast,
    device_name,
    nondeterministic_ops,
    pick_device,
    set_determinism,
    set_precision,
)
from normsweep.training.progress import OnEpoch, Progress, stopped_try

log = logging.getLogger("normsweep.training.engine")

#: ``on_step(batch, members, losses)``: after every training step (batch: the epoch's batches
#: done so far; members: the indices that stepped; losses: theirs).
OnStep = Callable[[int, list[int], torch.Tensor], None]


class Members:
    """K members of one kind, as the engine drives them. ``active`` lists the members still
    training (indices into ``specs``); every method works on those, in that order.
    ``execution``: how they compute (a kind that cannot use channels_last turns it off)."""

    def __init__(self, specs: Sequence[CellSpec], base: torch.nn.Module, config: TrainConfig,
                 device: torch.device, channels: int, execution: Execution = PLAIN) -> None:  # fmt: skip
        self.specs = list(specs)
        self.device = device
        self.execution = execution
        self.active = list(range(len(specs)))
        self.autocast = functools.partial(autocast, device, config.precision)  # every forward pass in it

    def train(self) -> None:
        """At an epoch's start: the networks in training mode."""
        raise NotImplementedError(f"{type(self).__name__} does not train")

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: Sequence[float]) -> torch.Tensor:
        """One optimizer step of every active member on this batch (``lr``: each one's rate);
        their losses, one per active member."""
        raise NotImplementedError(f"{type(self).__name__} does not train")

    def evaluate(
        self, data: Split, batch_size: int, predicted: list[list[torch.Tensor]] | None = None
    ) -> tuple[list[float], list[float]]:
        """Accuracy and mean loss of every active member on ``data`` (each batch read once);
        each member's predicted classes appended to ``predicted[member]`` when given."""
        raise NotImplementedError

    def drop(self, gone: Sequence[int]) -> None:
        """Members leave the run (they diverged)."""
        self.active = [i for i in self.active if i not in gone]

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs of the members (plain tensors and values only)."""
        return {"active": list(self.active)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = [int(i) for i in state["active"]]


class Tally:
    """Accuracy and summed loss of members over an evaluation, one device sync at its end."""

    def __init__(self, k: int, device: torch.device):
        self.correct = torch.zeros(k, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)

    def add(self, row: int, log_probs: torch.Tensor, labels: torch.Tensor, predicted: list | None) -> None:
        """One member's (``row``) log-probabilities for one batch."""
        self.loss_sum[row] += F.nll_loss(log_probs, labels, reduction="sum").double()
        guess = log_probs.argmax(dim=1)
        self.correct[row] += (guess == labels).sum()
        if predicted is not None:
            predicted.append(guess.to(torch.int16))

    def result(self, n: int) -> tuple[list[float], list[float]]:
        n = max(n, 1)
        return (self.correct.double() / n).tolist(), (self.loss_sum / n).tolist()


def initial_model(spec: CellSpec, device: torch.device) -> torch.nn.Module:
    """The cell's network at its start, built from torch's generator as ``set_determinism``
    left it: every member of a run starts from these same weights."""
    keep = spec.class_map if spec.predict_over == "folder" else None
    model = build_model(spec.architecture, spec.outputs or spec.num_classes, spec.weights, spec.weights_sha256,
                        spec.arch_kwargs, keep)  # fmt: skip
    return scale_first_layer(model, spec.init_weight, spec.init_bias).to(device)


def start(specs: Sequence[CellSpec], config: TrainConfig) -> tuple[torch.device, Execution, torch.nn.Module]:
    """The device, how the run computes there and the members' common starting network
    (threads, device, seed and determinism first), after checking they share a start."""
    same_start(specs)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    set_precision(config.precision)
    execution = Execution.resolve(device, config.deterministic, config.channels_last, config.cudnn_benchmark,
                                  config.compile, config.precision)  # fmt: skip
    set_determinism(specs[0].seed, config.deterministic)
    execution.apply()
    model = initial_model(specs[0], device)
    if config.deterministic and device.type == "cuda" and (ops := nondeterministic_ops(model)):
        log.warning("deterministic: these operations have no deterministic CUDA kernel and run as "
                    "they are (recorded in each result): %s", "; ".join(ops))  # fmt: skip
        execution = dataclasses.replace(execution, nondeterministic=tuple(ops))
    return device, execution, model


def run(
    kind: type[Members],
    specs: Sequence[CellSpec],
    train: Split,
    test: Split,
    config: TrainConfig,
    checkpoint: Path | None = None,
    pack_id: str = "",
    on_epoch: OnEpoch | None = None,
    on_step: OnStep | None = None,
) -> list[CellResult]:
    """Train (or, with ``epochs: 0``, evaluate) the cells ``specs`` as members of ``kind``;
    one result each, in the order of ``specs``. ``checkpoint``: where the run saves and
    resumes (None: it does not)."""
    started = time.perf_counter()
    device, execution, base = start(specs, config)
    members = kind(specs, base, config, device, train.channels, execution)
    names = [s.member for s in specs]
    made_by = [fingerprint(spec, config) for spec in specs]
    shuffle = torch.Generator().manual_seed(specs[0].seed)
    progress = Progress.fresh(len(specs), config.lr, on_epoch)
    position = _resume(checkpoint, made_by, names, device, progress, members, shuffle, pack_id)

    def save(epoch_done: int, at: Position | None = None) -> None:
        if checkpoint is not None:
            save_atomic(checkpoint, {"fingerprint": made_by, "names": names, **progress.to_dict(), "epoch": epoch_done,
                                     "position": at.to_dict() if at else None, "kind": members.state_dict(),
                                     **rng_state(shuffle)})  # fmt: skip

    def stop_here(where: str, epoch_done: int, at: Position | None = None) -> None:
        progress.stops.append(stopped_try(str(stop.signal), where))
        save(epoch_done, at)
        raise Interrupted(f"stopped by {stop.signal} {where}: saved to {checkpoint}; the next try resumes there",
                          progressed=steps[0] > (1 if at else 0))  # fmt: skip

    plateau = model_spec(specs[0].architecture).plateau
    dropped = left_out(base, len(train), config.batch_size) if config.epochs > 0 else 0
    every = Every(config.checkpoint_minutes if checkpoint is not None else None)
    layout = members.execution.channels_last
    train_d = train.to(device, layout) if config.epochs > 0 else train
    test_d = test.to(device, layout)
    steps = [0]  # batches trained by this try
    stop = Stop()  # SIGTERM or --signal's: save at the next batch boundary, then stop
    with stop.watching(active=checkpoint is not None and config.epochs > 0):
        for epoch in range(progress.epoch + 1, config.epochs + 1):
            if not members.active:
                break
            tic = time.perf_counter()
            lr = {i: progress.plateau.lr[i] for i in members.active}  # the rates this epoch trains with

            def save_inside(
                batch: int, loss_sum: torch.Tensor, shuffle_state: torch.Tensor, epoch: int = epoch
            ) -> None:
                steps[0] += 1
                if stop.signal is not None or every.due():
                    at = Position(batch, loss_sum, shuffle_state)
                    if stop.signal is not None:  # a scheduler's warning: save here, and stop at once
                        stop_here(f"in epoch {epoch} after batch {batch}", epoch - 1, at)
                    save(epoch - 1, at)

            train_loss = _train_epoch(
                members, train_d, config.batch_size, shuffle, lr, position, save_inside, on_step, dropped
            )
            position = None
            diverged = [i for i in members.active if not math.isfinite(train_loss[i])]
            for i in diverged:
                progress.status[i] = STATUS_DIVERGED
                progress.record(
                    i, EpochRecord(epoch, math.nan, math.nan, train_loss[i], lr[i], time.perf_counter() - tic)
                )
                if len(specs) > 1:  # a cell alone: its own log says it (on_epoch)
                    log.warning("pack %s: %s diverged in epoch %d", pack_id, names[i], epoch)
            if diverged:
                members.drop(diverged)
            if members.active:
                accuracy, test_loss = members.evaluate(test_d, config.test_batch_size)
                if plateau:
                    progress.plateau.step(accuracy, members.active)
                seconds = time.perf_counter() - tic
                for row, i in enumerate(members.active):
                    progress.record(
                        i, EpochRecord(epoch, accuracy[row], test_loss[row], train_loss[i], lr[i], seconds)
                    )
            progress.epoch = epoch
            if epoch < config.epochs and members.active:
                if stop.signal is not None:  # it came during the evaluation
                    stop_here(f"after epoch {epoch}", epoch)
                save(epoch)
        if checkpoint is not None and steps[0]:
            save(progress.epoch)  # finished: a try whose results are lost after it rewrites them from here

    predicted = _evaluation_only(members, test_d, config, progress, started) if config.epochs == 0 else []
    wall = time.perf_counter() - started
    results = []
    for i, spec in enumerate(specs):
        result = cell_result(spec, progress.status[i], progress.histories[i], config, len(train), len(test), wall,
                             device, pack_id, len(specs), members.execution, dropped)  # fmt: skip
        result.predictions = torch.cat(predicted[i]).cpu().numpy() if predicted and predicted[i] else None
        results.append(result)
    return results


def _evaluation_only(
    members: Members, test: Split, config: TrainConfig, progress: Progress, started: float
) -> list[list[torch.Tensor]]:
    """``epochs: 0``: one evaluation, recorded as epoch 0, with the per-image predictions (McNemar)."""
    predicted: list[list[torch.Tensor]] = [[] for _ in members.specs]
    accuracy, test_loss = members.evaluate(test, config.test_batch_size, predicted)
    seconds = time.perf_counter() - started
    for row, i in enumerate(members.active):
        progress.record(i, EpochRecord(0, accuracy[row], test_loss[row], math.nan, config.lr, seconds))
    return predicted


def _resume(
    checkpoint: Path | None,
    made_by: list[dict[str, Any]],
    names: list[str],
    device: torch.device,
    progress: Progress,
    members: Members,
    shuffle: torch.Generator,
    pack_id: str = "",
) -> Position | None:
    """Restore the run from its checkpoint when one made by these settings exists (a checkpoint
    of other cells is refused); the position inside the next epoch, if it was saved there."""

    def same_members(state: dict) -> None:
        if "names" in state and state["names"] != names:
            raise PackError(f"{checkpoint}: a checkpoint of other cells ({state['names']}); delete it")

    saved = usable_checkpoint(checkpoint, made_by, device, "checkpoint", validate=same_members)
    if saved is None:
        return None
    progress.load(saved)
    members.load_state_dict(saved["kind"])
    restore_rng(saved, shuffle)
    position = Position.from_dict(saved.get("position"))
    inside = f", {position.batch} batches into epoch {progress.epoch + 1}" if position else ""
    who = f"pack {pack_id} " if pack_id else ""  # a cell's own log needs no name
    log.info("%sresumed from %s after epoch %d%s", who, checkpoint, progress.epoch, inside)
    for n, stop in enumerate(progress.stops, 1):  # the logs of earlier tries may be gone
        log.info("%searlier stop %d: %s", who, n, stop)
    return position


def _train_epoch(
    members: Members,
    data: Split,
    batch_size: int,
    shuffle: torch.Generator,
    lr: dict[int, float],
    position: Position | None,
    save: Callable[[int, torch.Tensor, torch.Tensor], None],
    on_step: OnStep | None,
    dropped: int = 0,
) -> dict[int, float]:
    """One pass of every active member over the epoch's shuffled batches, from ``position``
    when resuming inside the epoch; each member's mean batch loss (NaN or infinite: it
    diverged), with one device sync. ``save(batch, loss_sum, shuffle_state)`` is offered the
    position after every batch (it decides whether to save, and only then makes a Position)."""
    members.train()
    k = len(members.specs)
    if position is None:
        position = Position(0, torch.zeros(k, dtype=torch.float64), shuffle.get_state())
    else:
        shuffle.set_state(position.shuffle_state)
    order = torch.randperm(len(data), generator=shuffle)
    if dropped:  # the epoch's last image(s) in this order sit out (see left_out)
        order = order[: len(order) - dropped]
    sums = position.loss_sum.to(members.device)
    active = list(members.active)
    rows = torch.tensor(active, dtype=torch.int64, device=members.device)
    rates = [lr[i] for i in active]
    n_batches = position.batch
    for images, labels in data.batches(order, batch_size, start=position.batch):
        losses = members.step(images, labels, rates)
        if len(active) == k:
            sums += losses.double()
        else:
            sums[rows] += losses.double()
        n_batches += 1
        save(n_batches, sums, position.shuffle_state)
        if on_step is not None:  # e.g. a test comparing kinds step by step, or killing a run
            on_step(n_batches, active, losses)
    mean = (sums / max(n_batches, 1)).tolist()
    return {i: mean[i] for i in active}


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
    execution: Execution = PLAIN,
    dropped: int = 0,
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
        data_version=spec.data_version,
        head=spec.head,
        predict_over=spec.predict_over if spec.head == "mapped" else "",
        precision=config.precision,
        execution=execution.record(),
        train_left_out=dropped,
    )
