"""Packs: many cells of one model and seed trained at once, in one process, on one device.

Every cell of one seed trains the same network from the same initial weights on the same
batches; only the affine map ``(x - mean) / std`` in front of it differs. A pack stacks K
copies of the parameters (``torch.func.stack_module_state`` layout: one leading axis of
length K) and runs them with ``vmap(functional_call)``: one dispatched operator serves K
cells, which is what a GPU needs when one LeNet step is far too small to fill it.

Each member keeps everything its one-cell run has (:func:`normsweep.train.train_cell`):

- its own normalization, applied to the shared batch inside the vmap;
- the same initial weights (one model built after ``manual_seed(seed)``, copied K times),
  the same batch order (the seed's shuffle generator) and the same dropout masks
  (``randomness="same"``: one mask per batch, drawn from the global generator exactly as the
  one-cell run draws it);
- its own Adadelta state and learning rate (the update is written elementwise over the
  stacked tensors, with one lr per member), and its own ReduceLROnPlateau state
  (:class:`Plateau`, the rule of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` over
  per-member values);
- its own divergence: a member whose epoch training loss is NaN or infinite is recorded
  ``diverged`` at that epoch and leaves the pack; the others go on unchanged (their
  arithmetic never mixes with another member's).

A pack saves one checkpoint after every epoch and resumes after its last finished epoch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from .batches import Split
from .catalog import model_info
from .models import model_spec
from .results import STATUS_DIVERGED, STATUS_OK, CellResult, EpochRecord
from .train import (
    CellSpec,
    TrainConfig,
    cell_result,
    device_name,
    fingerprint,
    restore_rng,
    rng_state,
    save_atomic,
    usable_checkpoint,
)

log = logging.getLogger("normsweep.pack")

#: Adadelta's defaults (torch.optim.Adadelta), which the MNIST example keeps.
RHO, EPS = 0.9, 1e-6


class PackError(ValueError):
    """A pack that cannot be trained as asked; the message names the config key."""


@dataclass
class Plateau:
    """ReduceLROnPlateau(mode="max") with torch's defaults, one state per member.

    torch.optim takes one scalar learning rate per parameter group; a pack needs one per
    member, so the rule is written out here over lists (K values, once per epoch)."""

    lr: list[float]
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8
    best: list[float] = field(default_factory=list)
    num_bad_epochs: list[int] = field(default_factory=list)
    cooldown_counter: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        k = len(self.lr)
        self.best = self.best or [-math.inf] * k
        self.num_bad_epochs = self.num_bad_epochs or [0] * k
        self.cooldown_counter = self.cooldown_counter or [0] * k

    def step(self, metrics: Sequence[float], members: Sequence[int] | None = None) -> None:
        """One epoch's test accuracies of ``members`` (indices; default all)."""
        for i, current in zip(members if members is not None else range(len(self.lr)), metrics, strict=True):
            current = float(current)
            if current > self.best[i] * (1.0 + self.threshold):  # mode max, threshold_mode rel
                self.best[i] = current
                self.num_bad_epochs[i] = 0
            else:
                self.num_bad_epochs[i] += 1
            if self.cooldown_counter[i] > 0:
                self.cooldown_counter[i] -= 1
                self.num_bad_epochs[i] = 0
            if self.num_bad_epochs[i] > self.patience:
                new_lr = max(self.lr[i] * self.factor, self.min_lr)
                if self.lr[i] - new_lr > self.eps:
                    self.lr[i] = new_lr
                self.cooldown_counter[i] = self.cooldown
                self.num_bad_epochs[i] = 0

    def state_dict(self) -> dict:
        return {
            "lr": list(self.lr),
            "best": list(self.best),
            "num_bad_epochs": list(self.num_bad_epochs),
            "cooldown_counter": list(self.cooldown_counter),
        }

    def load_state_dict(self, state: dict) -> None:
        self.lr = [float(v) for v in state["lr"]]
        self.best = [float(v) for v in state["best"]]
        self.num_bad_epochs = [int(v) for v in state["num_bad_epochs"]]
        self.cooldown_counter = [int(v) for v in state["cooldown_counter"]]


def check_stackable(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> None:
    if model_info(arch, arch_kwargs).pack != "stacked":
        raise PackError(
            f"{arch} cannot be stacked (its BatchNorm statistics would be shared across the members); "
            f"normsweep.multinet.train_separate trains its packs"
        )


def member_bytes(n_params: int, batch_size: int, activations_per_sample: int) -> int:
    """Device memory of one member of a training step (float32): parameters, gradients and two
    Adadelta states, plus the activations kept for the backward pass."""
    return 4 * (4 * n_params + batch_size * activations_per_sample)


def lenet_activations_per_sample() -> int:
    """Values LeNet keeps per image for its backward pass: conv1 and conv2 outputs and their
    ReLUs, the pooled map with its dropout mask and the flattened copy, fc1 with its ReLU and
    dropout, the logits and log-probabilities."""
    return 2 * 32 * 26 * 26 + 2 * 64 * 24 * 24 + 3 * 9216 + 3 * 128 + 2 * 10


def fitting_pack(pack: int, need_per_member: int, available: int) -> int:
    return max(0, min(pack, available // max(need_per_member, 1)))


def check_fits(
    pack: int, n_params: int, batch_size: int, device: torch.device, available: int | None = None
) -> None:
    """Fail before training when ``pack`` members cannot fit in the device's free memory,
    naming ``pack`` and the size that would fit. ``available`` defaults to the device's free
    memory (CUDA) or the machine's available memory (CPU)."""
    if available is None:
        available = free_memory(device)
    if available is None:
        return
    need = member_bytes(n_params, batch_size, lenet_activations_per_sample())
    if pack * need > available:
        fits = fitting_pack(pack, need, available)
        raise PackError(
            f"config key 'cluster.pack': {pack} cells need about {pack * need / 2**30:.2f} GiB on "
            f"{device_name(device)}, which has {available / 2**30:.2f} GiB free; pack: {fits} fits "
            f"(or use a device with more memory)"
        )


def free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


@dataclass
class PackState:
    """The members' training state, stacked on a leading axis (row ``r`` holds member
    ``active[r]``): parameters, Adadelta's two running averages, the per-member plateau rule,
    every member's history and status, and the last finished epoch. A pack's loop reads as the
    one-cell loop: train an epoch, ``drop`` the diverged, evaluate, step the plateau, ``save``."""

    params: dict[str, torch.Tensor]
    square_avg: dict[str, torch.Tensor]
    acc_delta: dict[str, torch.Tensor]
    plateau: Plateau
    histories: list[list[EpochRecord]]
    status: list[str]
    active: list[int]
    epoch: int = 0

    @classmethod
    def start(cls, base: torch.nn.Module, k: int, lr: float) -> PackState:
        """K copies of ``base``'s parameters, fresh optimizer state, all members active."""
        params = {
            n: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())).contiguous()
            for n, p in base.named_parameters()
        }
        return cls(
            params=params,
            square_avg={n: torch.zeros_like(p) for n, p in params.items()},
            acc_delta={n: torch.zeros_like(p) for n, p in params.items()},
            plateau=Plateau(lr=[float(lr)] * k),
            histories=[[] for _ in range(k)],
            status=[STATUS_OK] * k,
            active=list(range(k)),
        )

    def rows(self, device: torch.device) -> torch.Tensor:
        return torch.tensor(self.active, dtype=torch.int64, device=device)

    def drop(self, diverged: Sequence[int]) -> None:
        """Members (indices) leave the pack: their rows go, the others' arithmetic never
        involved them."""
        if not diverged:
            return
        device = next(iter(self.params.values())).device
        keep = torch.tensor([r for r, i in enumerate(self.active) if i not in diverged], dtype=torch.int64,
                            device=device)  # fmt: skip
        self.params = {n: p.detach()[keep].clone().requires_grad_(True) for n, p in self.params.items()}
        self.square_avg = {n: v[keep].clone() for n, v in self.square_avg.items()}
        self.acc_delta = {n: v[keep].clone() for n, v in self.acc_delta.items()}
        self.active = [i for i in self.active if i not in diverged]

    def update(self, names: Sequence[str], grads: Sequence[torch.Tensor], lr: torch.Tensor) -> None:
        """One Adadelta step of every active member (``lr``: one rate per active member)."""
        with torch.no_grad():
            for n, g in zip(names, grads, strict=True):
                _adadelta(self.params[n], g, self.square_avg[n], self.acc_delta[n], lr)

    def save(self, path: Path, members: list[str], made_by: list[dict], shuffle: torch.Generator) -> None:
        """Everything needed to resume after ``self.epoch`` (plain tensors and values only, so
        that it loads with weights_only=True), and what made it; written atomically."""
        save_atomic(path, {
            "fingerprint": made_by,
            "members": members,
            "epoch": self.epoch,
            "active": self.active,
            "status": self.status,
            "histories": [[vars(r) for r in h] for h in self.histories],
            "params": {n: p.detach() for n, p in self.params.items()},
            "square_avg": self.square_avg,
            "acc_delta": self.acc_delta,
            "plateau": self.plateau.state_dict(),
            **rng_state(shuffle),
        })  # fmt: skip

    @classmethod
    def load(
        cls,
        path: Path | None,
        members: list[str],
        made_by: list[dict],
        device: torch.device,
        shuffle: torch.Generator,
    ) -> PackState | None:
        """The pack's state from its checkpoint, or None when there is none or it was made by
        other settings (logged: the pack starts afresh). A checkpoint of other cells is refused."""

        def same_members(state: dict) -> None:
            if state["members"] != members:
                raise PackError(f"{path}: a checkpoint of other cells ({state['members']}); delete it")

        state = usable_checkpoint(path, made_by, device, "pack checkpoint", validate=same_members)
        if state is None:
            return None
        plateau = Plateau(lr=[0.0] * len(members))
        plateau.load_state_dict(state["plateau"])
        restore_rng(state, shuffle)
        return cls(
            params={n: p.to(device) for n, p in state["params"].items()},
            square_avg={n: v.to(device) for n, v in state["square_avg"].items()},
            acc_delta={n: v.to(device) for n, v in state["acc_delta"].items()},
            plateau=plateau,
            histories=[[EpochRecord(**r) for r in h] for h in state["histories"]],
            status=list(state["status"]),
            active=[int(i) for i in state["active"]],
            epoch=int(state["epoch"]),
        )


def train_pack(
    specs: Sequence[CellSpec],
    train: Split,
    test: Split,
    config: TrainConfig,
    checkpoint: Path | None = None,
    pack_id: str = "",
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    eval_chunk: int = 8,
    on_step: Callable[[list[int], torch.Tensor], None] | None = None,
) -> list[CellResult]:
    """Train the cells ``specs`` (one model, one seed) as one stacked model; one result each,
    in the order of ``specs``. ``on_epoch(member_index, record)`` is called for every member's
    finished (or diverged) epoch; ``on_step(members, losses)`` after every training step."""
    if not specs:
        return []
    from .multinet import pack_start

    check_stackable(specs[0].architecture, specs[0].arch_kwargs)
    first = specs[0]
    started = time.perf_counter()
    device, base = pack_start(specs, config)
    info = model_spec(first.architecture)
    k = len(specs)
    names = [name for name, _ in base.named_parameters()]
    check_fits(k, sum(p.numel() for p in base.parameters()), config.batch_size, device)
    channels = train.channels
    mean = torch.stack([_per_channel(s.mean, 0.0, channels) for s in specs]).to(device)
    std = torch.stack([_per_channel(s.std, 1.0, channels) for s in specs]).to(device)
    shuffle = torch.Generator().manual_seed(first.seed)
    members = [f"{s.mean_label}/{s.std_label}" for s in specs]
    made_by = [fingerprint(spec, config) for spec in specs]
    state = PackState.load(checkpoint, members, made_by, device, shuffle)
    if state is None:
        state = PackState.start(base, k, config.lr)
    else:
        log.info("pack %s resumed from %s after epoch %d", pack_id, checkpoint, state.epoch)
    member_log_probs, batched_loss = _stacked(base)
    train_d, test_d = train.to(device), test.to(device)

    def evaluate_active() -> tuple[list[float], list[float]]:
        rows = state.rows(device)
        return _evaluate(member_log_probs, state.params, mean[rows], std[rows], test_d,
                         config.test_batch_size, eval_chunk, base)  # fmt: skip

    def record(i: int, entry: EpochRecord) -> None:
        state.histories[i].append(entry)
        if on_epoch is not None:
            on_epoch(i, entry)

    for p in state.params.values():
        p.requires_grad_(True)
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if not state.active:
            break
        tic = time.perf_counter()
        lr_of = {i: state.plateau.lr[i] for i in state.active}  # the rates this epoch trains with
        base.train()
        order = torch.randperm(len(train), generator=shuffle)
        train_loss = _train_epoch(state, names, batched_loss, mean, std, (train_d, order),
                                  config.batch_size, lr_of, on_step)  # fmt: skip
        diverged = [i for i in state.active if not math.isfinite(train_loss[i])]
        for i in diverged:
            state.status[i] = STATUS_DIVERGED
            record(
                i, EpochRecord(epoch, math.nan, math.nan, train_loss[i], lr_of[i], time.perf_counter() - tic)
            )
            log.warning("pack %s: %s diverged in epoch %d (training loss %s)", pack_id, members[i], epoch,
                        train_loss[i])  # fmt: skip
        state.drop(diverged)
        if state.active:
            accuracy, test_loss = evaluate_active()
            if info.plateau:
                state.plateau.step(accuracy, state.active)
            seconds = time.perf_counter() - tic
            for row, i in enumerate(state.active):
                record(i, EpochRecord(epoch, accuracy[row], test_loss[row], train_loss[i], lr_of[i], seconds))
        state.epoch = epoch
        if checkpoint is not None and epoch < config.epochs and state.active:
            state.save(checkpoint, members, made_by, shuffle)

    if config.epochs == 0 and state.active:  # evaluation only
        accuracy, test_loss = evaluate_active()
        for row, i in enumerate(state.active):
            seconds = time.perf_counter() - started
            state.histories[i].append(
                EpochRecord(0, accuracy[row], test_loss[row], math.nan, config.lr, seconds)
            )
    wall = time.perf_counter() - started
    return [
        cell_result(
            spec, state.status[i], state.histories[i], config, len(train), len(test), wall, device, pack_id, k
        )
        for i, spec in enumerate(specs)
    ]


def _stacked(base: torch.nn.Module) -> tuple[Callable, Callable]:
    """One member's log-probabilities ``(params, mean, std, x)`` through ``base`` with the given
    parameters, and the members' losses at once: vmap over the stacked parameters and the
    members' normalizations, one batch for all, one dropout mask for all (``randomness="same"``,
    drawn as the one-cell run draws it)."""
    buffers = dict(base.named_buffers())

    def member_log_probs(p, m, s, x):
        return functional_call(base, (p, buffers), ((x - m) / s,))

    def member_loss(p, m, s, x, y):
        return F.nll_loss(member_log_probs(p, m, s, x), y)

    return member_log_probs, vmap(member_loss, in_dims=(0, 0, 0, None, None), randomness="same")


def _train_epoch(
    state: PackState,
    names: Sequence[str],
    batched_loss: Callable,
    mean: torch.Tensor,
    std: torch.Tensor,
    data: tuple[Split, torch.Tensor],
    batch_size: int,
    lr_of: dict[int, float],
    on_step: Callable[[list[int], torch.Tensor], None] | None,
) -> dict[int, float]:
    """One pass of every active member over the epoch's (shuffled) batches; each member's mean
    batch loss (NaN or infinite: it diverged), with one device sync. ``data``: the split and
    the epoch's order of it."""
    split, order = data
    device = mean.device
    rows = state.rows(device)
    lr = torch.tensor([lr_of[i] for i in state.active], dtype=torch.float32, device=device)
    loss_sum = torch.zeros(len(state.active), device=device)
    n_batches = 0
    for images, labels in split.batches(order, batch_size):
        losses = batched_loss(state.params, mean[rows], std[rows], images, labels)
        grads = torch.autograd.grad(losses.sum(), [state.params[n] for n in names])
        state.update(names, grads, lr)
        loss_sum += losses.detach()
        n_batches += 1
        if on_step is not None:  # (member indices, their losses), e.g. for a test
            on_step(list(state.active), losses.detach())
    return dict(zip(state.active, (loss_sum / max(n_batches, 1)).tolist(), strict=True))


def _per_channel(values: Sequence[float] | None, identity: float, channels: int) -> torch.Tensor:
    """A member's mean or std as a C x 1 x 1 tensor; no normalization is (x - 0) / 1, which
    gives x exactly."""
    if values is None:
        values = [identity]
    t = torch.as_tensor(list(values), dtype=torch.float32)
    if t.numel() == 1:
        t = t.repeat(channels)
    return t.reshape(channels, 1, 1)


def _adadelta(
    param: torch.Tensor,
    grad: torch.Tensor,
    square_avg: torch.Tensor,
    acc_delta: torch.Tensor,
    lr: torch.Tensor,
) -> None:
    """torch.optim.Adadelta's update (no weight decay), elementwise over the stacked members,
    with one learning rate per member (``lr``: K values)."""
    lr = lr.reshape(-1, *([1] * (param.dim() - 1)))
    square_avg.mul_(RHO).addcmul_(grad, grad, value=1 - RHO)
    std = square_avg.add(EPS).sqrt_()
    delta = acc_delta.add(EPS).sqrt_().div_(std).mul_(grad)
    acc_delta.mul_(RHO).addcmul_(delta, delta, value=1 - RHO)
    param.sub_(delta * lr)


@torch.inference_mode()
def _evaluate(
    log_probs, params, mean, std, data: Split, batch_size, chunk, base
) -> tuple[list[float], list[float]]:
    """Test accuracy and mean test loss of every member: each batch read once, the members
    ``chunk`` at a time (so that a large test batch times many members stays within memory)."""
    base.eval()
    k = mean.shape[0]
    correct = torch.zeros(k, dtype=torch.int64, device=mean.device)
    loss_sum = torch.zeros(k, dtype=torch.float64, device=mean.device)
    forward = vmap(log_probs, in_dims=(0, 0, 0, None))
    for images, labels in data.batches(None, batch_size):
        for lo in range(0, k, chunk):
            part = {n: p[lo : lo + chunk].detach() for n, p in params.items()}
            out = forward(part, mean[lo : lo + chunk], std[lo : lo + chunk], images)  # chunk x B x classes
            nll = -out.gather(2, labels.expand(out.shape[0], -1).unsqueeze(2)).squeeze(2)
            loss_sum[lo : lo + chunk] += nll.double().sum(dim=1)
            correct[lo : lo + chunk] += (out.argmax(dim=2) == labels).sum(dim=1)
    n = max(len(data), 1)
    return (correct.double() / n).tolist(), (loss_sum / n).tolist()
