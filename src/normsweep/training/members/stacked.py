"""Members stacked into one model: K copies of LeNet's parameters on a leading axis run with
``vmap(functional_call)``, so one dispatched operator serves K cells (one LeNet step is far too
small to fill a GPU). Each member keeps its one-cell run: its normalization, the same initial
weights, batch order and dropout masks (``randomness="same"``), its own Adadelta state and rate,
and its own divergence (its rows leave the stack). Networks with BatchNorm cannot be stacked:
:class:`normsweep.training.members.separate.Separate` trains their packs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from normsweep.core.errors import PackError
from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data.batches import Split
from normsweep.models.info import model_info
from normsweep.models.normalize import per_channel
from normsweep.training.devices import PLAIN, Execution, device_name, free_memory
from normsweep.training.engine import Members, Tally

#: Adadelta's defaults (torch.optim.Adadelta), which the MNIST example keeps.
RHO, EPS = 0.9, 1e-6


def check_stackable(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> None:
    if model_info(arch, arch_kwargs).pack != "stacked":
        raise PackError(
            f"{arch} cannot be stacked (its BatchNorm statistics would be shared across the members); "
            f"its packs train as separate networks (normsweep.training.members.separate)"
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


class Stacked(Members):
    """K copies of one network's parameters, stepped at once under vmap."""

    eval_chunk = 8  # members per evaluation pass: a large test batch times many members stays in memory

    def __init__(self, specs: Sequence[CellSpec], base: torch.nn.Module, config: TrainConfig,
                 device: torch.device, channels: int, execution: Execution = PLAIN) -> None:  # fmt: skip
        # the stacked parameters have a leading member axis: no NHWC layout for them
        super().__init__(
            specs, base, config, device, channels, dataclasses.replace(execution, channels_last=False)
        )
        check_stackable(specs[0].architecture, specs[0].arch_kwargs)
        k = len(specs)
        check_fits(k, sum(p.numel() for p in base.parameters()), config.batch_size, device)
        self.base = base
        self.names = [name for name, _ in base.named_parameters()]
        self.params = {
            n: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())).contiguous().requires_grad_(True)
            for n, p in base.named_parameters()
        }
        self.square_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.acc_delta = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.mean = torch.stack([per_channel(s.mean, 0.0, channels) for s in specs]).to(device)
        self.std = torch.stack([per_channel(s.std, 1.0, channels) for s in specs]).to(device)
        self.log_probs, batched_loss = _stacked(base)
        self.batched_loss = self.execution.compiled(batched_loss)
        self._rates: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def _rows_and_rates(self, lr: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(self.active), tuple(lr))
        if self._rates is None or self._rates[0] != key:  # once an epoch, not once a step
            rows = torch.tensor(self.active, dtype=torch.int64, device=self.device)
            self._rates = (key, rows, torch.tensor(list(lr), dtype=torch.float32, device=self.device))
        return self._rates[1], self._rates[2]

    def train(self) -> None:
        self.base.train()

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: Sequence[float]) -> torch.Tensor:
        rows, rates = self._rows_and_rates(lr)
        with self.autocast():
            losses = self.batched_loss(self.params, self.mean[rows], self.std[rows], images, labels)
        grads = torch.autograd.grad(losses.sum(), [self.params[n] for n in self.names])
        with torch.no_grad():
            for n, g in zip(self.names, grads, strict=True):
                _adadelta(self.params[n], g, self.square_avg[n], self.acc_delta[n], rates)
        return losses.detach()

    def drop(self, gone: Sequence[int]) -> None:
        keep = torch.tensor([r for r, i in enumerate(self.active) if i not in gone], dtype=torch.int64,
                            device=self.device)  # fmt: skip
        self.params = {n: p.detach()[keep].clone().requires_grad_(True) for n, p in self.params.items()}
        self.square_avg = {n: v[keep].clone() for n, v in self.square_avg.items()}
        self.acc_delta = {n: v[keep].clone() for n, v in self.acc_delta.items()}
        super().drop(gone)

    @torch.inference_mode()
    def evaluate(
        self, data: Split, batch_size: int, predicted: list[list[torch.Tensor]] | None = None
    ) -> tuple[list[float], list[float]]:
        """Each batch read once, the members ``eval_chunk`` at a time."""
        self.base.eval()
        rows = torch.tensor(self.active, dtype=torch.int64, device=self.device)
        mean, std = self.mean[rows], self.std[rows]
        k, chunk = len(self.active), self.eval_chunk
        tally = Tally(k, self.device)
        forward = vmap(self.log_probs, in_dims=(0, 0, 0, None))
        for images, labels in data.batches(None, batch_size):
            for lo in range(0, k, chunk):
                part = {n: p[lo : lo + chunk].detach() for n, p in self.params.items()}
                with self.autocast():  # chunk x B x classes
                    out = forward(part, mean[lo : lo + chunk], std[lo : lo + chunk], images).float()
                nll = -out.gather(2, labels.expand(out.shape[0], -1).unsqueeze(2)).squeeze(2)
                tally.loss_sum[lo : lo + chunk] += nll.double().sum(dim=1)
                guess = out.argmax(dim=2)
                tally.correct[lo : lo + chunk] += (guess == labels).sum(dim=1)
                if predicted is not None:
                    for row, g in enumerate(guess, start=lo):
                        predicted[self.active[row]].append(g.to(torch.int16))
        return tally.result(len(data))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "params": {n: p.detach() for n, p in self.params.items()},
                "square_avg": self.square_avg, "acc_delta": self.acc_delta}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.params = {n: p.to(self.device).requires_grad_(True) for n, p in state["params"].items()}
        self.square_avg = {n: v.to(self.device) for n, v in state["square_avg"].items()}
        self.acc_delta = {n: v.to(self.device) for n, v in state["acc_delta"].items()}


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
