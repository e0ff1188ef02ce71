"""Members that share one network and differ only in their normalization: evaluation only
(``epochs: 0``, the notebook's ResNet protocol: pretrained weights, no training).

In eval mode every image is independent (BatchNorm uses its running statistics), so each
member's outputs are those of its one-cell evaluation. Each test batch is read once and
normalized K ways; the K copies go through the network together, ``eval_images`` images per
forward pass, which is what fills a GPU when the test batch is small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data.batches import Split
from normsweep.models.normalize import normalize
from normsweep.training.devices import PLAIN, Execution
from normsweep.training.engine import Members, Tally


@torch.inference_mode()
def member_logits(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    specs: Sequence[CellSpec],
    eval_images: int = 256,
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


class Evaluation(Members):
    """One network, K normalizations; it does not train."""

    eval_images = 256

    def __init__(self, specs: Sequence[CellSpec], base: torch.nn.Module, config: TrainConfig,
                 device: torch.device, channels: int, execution: Execution = PLAIN) -> None:  # fmt: skip
        super().__init__(specs, base, config, device, channels, execution)
        self.net = execution.layout(base)
        self.forward = execution.compiled(self.net)

    @torch.inference_mode()
    def evaluate(
        self, data: Split, batch_size: int, predicted: list[list[torch.Tensor]] | None = None
    ) -> tuple[list[float], list[float]]:
        self.net.eval()
        specs = [self.specs[i] for i in self.active]
        tally = Tally(len(specs), self.device)
        for images, labels in data.batches(None, batch_size):
            with self.autocast():
                outputs = member_logits(self.forward, images, specs, self.eval_images)
            for row, output in enumerate(outputs):
                i = self.active[row]
                tally.add(row, output, labels, predicted[i] if predicted is not None else None)
        return tally.result(len(data))
