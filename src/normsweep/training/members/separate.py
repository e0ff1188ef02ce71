"""Members that are separate networks: K copies of the starting network, each with its own
optimizer and its own copy of torch's random state, stepped in turn on each batch (read once
for all). ``K = 1`` is a cell trained alone; any K > 1 is a pack of networks that cannot be
stacked (BatchNorm, or a pretrained network that fills a GPU).

Each member draws from its own random state on the CPU and, on a GPU, on that GPU (dropout,
stochastic depth), so it draws exactly what its one-cell run draws on any device, whatever the
members before it did; each one's state is saved with the checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data.batches import Split
from normsweep.models.build import model_spec
from normsweep.models.normalize import normalize
from normsweep.training.checkpoint import device_rng, set_device_rng
from normsweep.training.devices import PLAIN, Execution
from normsweep.training.engine import Members, Tally


class Separate(Members):
    """K networks, each batch read once for all of them."""

    def __init__(self, specs: Sequence[CellSpec], base: torch.nn.Module, config: TrainConfig,
                 device: torch.device, channels: int, execution: Execution = PLAIN) -> None:  # fmt: skip
        super().__init__(specs, base, config, device, channels, execution)
        info = model_spec(specs[0].architecture)
        rng = device_rng(device)  # after building the network: where each one-cell run is now
        base = execution.layout(base)
        self.nets = [base] + [copy.deepcopy(base) for _ in specs[1:]]
        self.forward = [execution.compiled(net) for net in self.nets]  # the nets' own state_dict keys stay
        self.optimizers = [info.make_optimizer(net.parameters(), config.lr) for net in self.nets]
        self.rngs = [{k: (v.clone() if v is not None else None) for k, v in rng.items()} for _ in specs]

    def train(self) -> None:
        for i in self.active:
            self.nets[i].train()

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: Sequence[float]) -> torch.Tensor:
        losses = []
        for i, rate in zip(self.active, lr, strict=True):
            set_device_rng(self.rngs[i], self.device)
            optimizer = self.optimizers[i]
            for group in optimizer.param_groups:
                group["lr"] = rate
            optimizer.zero_grad()
            spec = self.specs[i]
            with self.autocast():
                loss = F.nll_loss(self.forward[i](normalize(images, spec.mean, spec.std)), labels)
            loss.backward()
            optimizer.step()
            self.rngs[i] = device_rng(self.device)
            losses.append(loss.detach())
        return torch.stack(losses)

    @torch.inference_mode()
    def evaluate(
        self, data: Split, batch_size: int, predicted: list[list[torch.Tensor]] | None = None
    ) -> tuple[list[float], list[float]]:
        for i in self.active:
            self.nets[i].eval()
        tally = Tally(len(self.active), self.device)
        for images, labels in data.batches(None, batch_size):
            for row, i in enumerate(self.active):
                spec = self.specs[i]
                with self.autocast():
                    output = self.forward[i](normalize(images, spec.mean, spec.std))
                tally.add(row, output, labels, predicted[i] if predicted is not None else None)
        return tally.result(len(data))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "nets": [net.state_dict() for net in self.nets],
                "optimizers": [o.state_dict() for o in self.optimizers], "rngs": self.rngs}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for net, optimizer, saved, opt_saved in zip(self.nets, self.optimizers, state["nets"], state["optimizers"],
                                                    strict=True):  # fmt: skip
            net.load_state_dict(saved)
            optimizer.load_state_dict(opt_saved)
        self.rngs = [{k: (v.cpu() if v is not None else None) for k, v in r.items()} for r in state["rngs"]]
