"""Packs for networks that cannot be stacked (BatchNorm, or a pretrained net that fills a GPU):
the data is read once per pack, and each member is exactly its one-cell run.

- :func:`evaluate_pack` (``epochs: 0``, the notebook's ResNet protocol: pretrained weights,
  evaluation only): one network, every test batch read once and normalized K ways. In eval
  mode every image is independent (BatchNorm uses its running statistics), so each member's
  logits are those of its one-cell evaluation; the K normalized copies of a batch go through
  the network together, ``eval_images`` images per forward pass, which is what fills a GPU
  when the test batch is small.
- :func:`train_separate`: K networks (one per member, each with its own BatchNorm statistics,
  optimizer and learning-rate schedule) that train on each batch in turn. Each member draws
  from its own copy of torch's random state, so dropout or any other randomness is what the
  member's one-cell run draws; the batch order is the seed's, as in the one-cell run.

Both save nothing (evaluation) or one checkpoint of every member (training: after each epoch
and, with ``checkpoint_minutes``, inside one, with the position in the epoch's batch order).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import ReduceLROnPlateau

from .batches import Split
from .models import model_spec
from .results import STATUS_DIVERGED, STATUS_OK, CellResult, EpochRecord
from .train import (
    CellSpec,
    Every,
    Position,
    TrainConfig,
    cell_result,
    fingerprint,
    initial_model,
    normalize,
    pick_device,
    save_atomic,
    set_determinism,
    usable_checkpoint,
)

log = logging.getLogger("normsweep.multinet")


def same_start(specs: Sequence[CellSpec]) -> None:
    """Members of a pack share one start: model, seed, classes, weights, initialization."""

    def start(spec: CellSpec) -> tuple:
        return (spec.model, spec.architecture, repr(spec.arch_kwargs), spec.seed, spec.num_classes, spec.weights,
                spec.init_weight, spec.init_bias)  # fmt: skip

    if any(start(spec) != start(specs[0]) for spec in specs):
        from .pack import PackError

        raise PackError("a pack holds cells of one model and one seed with the same start")


def pack_start(specs: Sequence[CellSpec], config: TrainConfig) -> tuple[torch.device, torch.nn.Module]:
    """The device and the members' common starting network, built as a one-cell run builds its
    own (threads, device, seed and determinism first), after checking they share a start."""
    same_start(specs)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    set_determinism(specs[0].seed, config.deterministic)
    return device, initial_model(specs[0], device)


@torch.inference_mode()
def member_logits(
    net: torch.nn.Module, images: torch.Tensor, specs: Sequence[CellSpec], eval_images: int = 256
) -> list[torch.Tensor]:
    """The network's outputs for one batch normalized as each member asks, the members'
    copies concatenated up to ``eval_images`` images per forward pass."""
    per_pass = max(1, eval_images // max(len(images), 1))
    out: list[torch.Tensor] = []
    for lo in range(0, len(specs), per_pass):
        part = specs[lo : lo + per_pass]
        stacked = torch.cat([normalize(images, s.mean, s.std) for s in part])
        out.extend(net(stacked).split(len(images)))
    return out


@torch.inference_mode()
def _evaluate_members(
    nets: Sequence[torch.nn.Module],
    specs: Sequence[CellSpec],
    data: Split,
    batch_size: int,
    eval_images: int,
    predicted: list[list[torch.Tensor]] | None = None,
) -> tuple[list[float], list[float]]:
    """Accuracy and mean loss of each member on ``data``, every batch read once. One network
    (an evaluation pack): the members' copies batched together; else one network each. Each
    member's predicted classes are appended to ``predicted[member]`` when it is given."""
    for net in nets:
        net.eval()
    k = len(specs)
    device = next(nets[0].parameters()).device
    correct = torch.zeros(k, dtype=torch.int64, device=device)
    loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
    for images, labels in data.batches(None, batch_size):
        if len(nets) == 1:
            outputs = member_logits(nets[0], images, specs, eval_images)
        else:
            outputs = [net(normalize(images, s.mean, s.std)) for net, s in zip(nets, specs, strict=True)]
        for i, output in enumerate(outputs):
            loss_sum[i] += F.nll_loss(output, labels, reduction="sum").double()
            guess = output.argmax(dim=1)
            correct[i] += (guess == labels).sum()
            if predicted is not None:
                predicted[i].append(guess.to(torch.int16))
    n = max(len(data), 1)
    return (correct.double() / n).tolist(), (loss_sum / n).tolist()


def evaluate_pack(
    specs: Sequence[CellSpec],
    test: Split,
    config: TrainConfig,
    pack_id: str = "",
    n_train: int = 0,
    eval_images: int = 256,
) -> list[CellResult]:
    """Evaluate the members (``epochs: 0``) with one network, reading each test batch once
    (``n_train``: the training split's size, recorded as a one-cell evaluation records it)."""
    started = time.perf_counter()
    device, net = pack_start(specs, config)
    predicted: list[list[torch.Tensor]] = [[] for _ in specs]
    accuracy, loss = _evaluate_members(
        [net], specs, test.to(device), config.test_batch_size, eval_images, predicted
    )
    wall = time.perf_counter() - started
    results = [
        cell_result(
            spec,
            STATUS_OK,
            [EpochRecord(0, accuracy[i], loss[i], math.nan, config.lr, wall)],
            config,
            n_train,
            len(test),
            wall,
            device,
            pack_id,
            len(specs),
        )  # fmt: skip
        for i, spec in enumerate(specs)
    ]
    for result, guesses in zip(results, predicted, strict=True):
        result.predictions = torch.cat(guesses).cpu().numpy() if guesses else None
    return results


@dataclass
class Member:
    """One member's network and training state, and its own copy of torch's random state."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: ReduceLROnPlateau
    rng: torch.Tensor
    history: list[EpochRecord]
    status: str = STATUS_OK

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": self.rng, "status": self.status,
                "history": [vars(r) for r in self.history]}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng = state["rng"].cpu()
        self.status = state["status"]
        self.history = [EpochRecord(**r) for r in state["history"]]


def _members(specs: Sequence[CellSpec], base: torch.nn.Module, config: TrainConfig) -> list[Member]:
    info = model_spec(specs[0].architecture)
    rng = torch.get_rng_state()  # after building the network: where each one-cell run is now
    out = []
    for _ in specs:
        net = copy.deepcopy(base)
        optimizer = info.make_optimizer(net.parameters(), config.lr)
        out.append(Member(net, optimizer, ReduceLROnPlateau(optimizer, mode="max"), rng.clone(), []))
    return out


def _step(member: Member, spec: CellSpec, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One training step of one member, drawing from its own random state."""
    torch.set_rng_state(member.rng)
    member.net.train()
    member.optimizer.zero_grad()
    loss = F.nll_loss(member.net(normalize(images, spec.mean, spec.std)), labels)
    loss.backward()
    member.optimizer.step()
    member.rng = torch.get_rng_state()
    return loss.detach()


def train_separate(
    specs: Sequence[CellSpec],
    train: Split,
    test: Split,
    config: TrainConfig,
    checkpoint: Path | None = None,
    pack_id: str = "",
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> list[CellResult]:
    """Train the members as K networks on batches read once; one result each, in order.
    ``on_step(batch_number, losses)`` after every batch (a test kills a run there)."""
    started = time.perf_counter()
    device, base = pack_start(specs, config)
    info = model_spec(specs[0].architecture)
    members = _members(specs, base, config)
    shuffle = torch.Generator().manual_seed(specs[0].seed)
    made_by = [fingerprint(spec, config) for spec in specs]
    names = [f"{s.mean_label}/{s.std_label}" for s in specs]
    first_epoch, position = 1, None
    state = usable_checkpoint(checkpoint, made_by, device, "pack checkpoint")
    if state is not None:
        for member, saved in zip(members, state["members"], strict=True):
            member.load_state_dict(saved)
        shuffle.set_state(state["shuffle_rng"].cpu())
        first_epoch, position = state["epoch"] + 1, Position.from_dict(state["position"])
        log.info("pack %s resumed from %s after epoch %d", pack_id, checkpoint, state["epoch"])
    every = Every(config.checkpoint_minutes)
    train_d, test_d = train.to(device), test.to(device)

    def save(epoch_done: int, at: Position | None) -> None:
        inside = None if at is None else at.to_dict()
        save_atomic(checkpoint, {"fingerprint": made_by, "members": [m.state_dict() for m in members],  # type: ignore[arg-type]
                                 "epoch": epoch_done, "position": inside, "shuffle_rng": shuffle.get_state()})  # fmt: skip

    for epoch in range(first_epoch, config.epochs + 1):
        active = [i for i, m in enumerate(members) if m.status == STATUS_OK]
        if not active:
            break
        tic = time.perf_counter()
        lr = {i: members[i].optimizer.param_groups[0]["lr"] for i in active}
        if position is None:
            position = Position(0, torch.zeros(len(specs), dtype=torch.float64), shuffle.get_state())
        else:
            shuffle.set_state(position.shuffle_state)  # Position.from_dict gave the sums as a tensor
        order = torch.randperm(len(train_d), generator=shuffle)
        sums = position.loss_sum.to(device)  # type: ignore[union-attr]
        n_batches = position.batch
        for images, labels in train_d.batches(order, config.batch_size, start=position.batch):
            losses = torch.zeros(len(specs), dtype=torch.float64, device=device)
            for i in active:
                losses[i] = _step(members[i], specs[i], images, labels)
            sums += losses
            n_batches += 1
            if checkpoint is not None and every.due():
                save(epoch - 1, Position(n_batches, sums.cpu(), position.shuffle_state))
            if on_step is not None:
                on_step(n_batches, losses)
        position = None
        train_loss = (sums / max(n_batches, 1)).tolist()
        for i in [i for i in active if not math.isfinite(train_loss[i])]:
            members[i].status = STATUS_DIVERGED
            record = EpochRecord(epoch, math.nan, math.nan, train_loss[i], lr[i], time.perf_counter() - tic)
            members[i].history.append(record)
            log.warning("pack %s: %s diverged in epoch %d", pack_id, names[i], epoch)
            if on_epoch is not None:
                on_epoch(i, record)
        active = [i for i in active if members[i].status == STATUS_OK]
        if active:
            nets, kept = [members[i].net for i in active], [specs[i] for i in active]
            accuracy, test_loss = _evaluate_members(nets, kept, test_d, config.test_batch_size, 0)
            for row, i in enumerate(active):
                if info.plateau:
                    members[i].scheduler.step(accuracy[row])
                record = EpochRecord(epoch, accuracy[row], test_loss[row], train_loss[i], lr[i],
                                     time.perf_counter() - tic)  # fmt: skip
                members[i].history.append(record)
                if on_epoch is not None:
                    on_epoch(i, record)
        if checkpoint is not None and epoch < config.epochs:
            save(epoch, None)
    wall = time.perf_counter() - started
    return [
        cell_result(
            spec, m.status, m.history, config, len(train), len(test), wall, device, pack_id, len(specs)
        )
        for spec, m in zip(specs, members, strict=True)
    ]
