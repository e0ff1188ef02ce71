"""How much a pack saves per cell: wall time, dispatched operators and FLOPs per cell-step,
for packs of K cells (normsweep.training.members.stacked) against one cell trained alone (normsweep.training.members.separate), on
real MNIST batches, on any device. On a GPU, run it there to choose `cluster.pack`:

    .venv/bin/python scripts/bench/pack.py                        # CPU here; K = 1 4 16 64
    .venv/bin/python scripts/bench/pack.py --device cuda --packs 1 8 32 64 128

Per cell-step: one training step of one cell (batch 64: forward, backward, Adadelta update).
Operators are counted with a TorchDispatchMode (each one at least one kernel launch on a
GPU) over one training step; FLOPs with torch.utils.flop_counter on the one-cell step (a pack
does the same arithmetic per member; the counter's formula for the grouped convolutions that
vmap makes does not apply). The modelled GPU time per cell-epoch is
    steps x (operators x launch_us + FLOPs / gpu_tflops) / K
with the per-launch cost and the achieved throughput printed beside it: a model, not a
measurement, for a machine without a GPU; on a GPU the measured wall time is the number to use.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from normsweep.core.spec import CellSpec, TrainConfig  # noqa: E402
from normsweep.data import batches, mnist  # noqa: E402
from normsweep.training.devices import device_name, pick_device  # noqa: E402
from normsweep.training.runner import train_cells  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "mnist"


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def normalizations(k: int) -> list[tuple[list[float], list[float]]]:
    """K cells spread over the notebook's grid (mean in [-2, 3], std in [0.02, 2])."""
    side = max(1, math.ceil(math.sqrt(k)))
    means = torch.linspace(-2, 3, side).tolist()
    stds = torch.logspace(math.log10(0.02), math.log10(2), side).tolist()
    return [([means[i % side]], [stds[i // side]]) for i in range(k)]


def spec(mean, std) -> CellSpec:
    return CellSpec("lenet", "mnist", str(mean[0]), str(std[0]), mean, std, 1998)


def one_step_pack(k: int, mnist: batches.TensorData, device: torch.device, steps: int):
    """Wall seconds per training step (between step 1 and step 1 + steps, so neither set-up nor
    evaluation counts) and operators dispatched by one step, for a pack of ``k`` cells."""
    config = TrainConfig(epochs=1, batch_size=64, test_batch_size=64, device=str(device))
    specs = [spec(m, s) for m, s in normalizations(k)]
    part = batches.TensorData(mnist.images[: 64 * (steps + 1)], mnist.labels[: 64 * (steps + 1)])
    tiny_test = batches.TensorData(mnist.images[:64], mnist.labels[:64])
    stamps: list[float] = []

    def stamp(n, members, losses):
        sync(device)
        stamps.append(time.perf_counter())

    train_cells(specs, part, tiny_test, config, on_step=stamp)
    wall = (stamps[-1] - stamps[0]) / steps
    counts: list[int] = []
    with CountOps() as ops:
        train_cells(specs, batches.TensorData(part.images[:192], part.labels[:192]),
                        tiny_test, config, on_step=lambda n, members, losses: counts.append(ops.count))  # fmt: skip
    return wall, counts[2] - counts[1]


def one_cell_alone(mnist: batches.TensorData, device: torch.device, steps: int):
    """The one-cell path (normsweep.training.members.separate with K = 1: nn.Module + torch.optim.Adadelta), per step: wall,
    operators, FLOPs."""
    config = TrainConfig(epochs=1, batch_size=64, test_batch_size=64, device=str(device))
    part = batches.TensorData(mnist.images[: 64 * (steps + 1)], mnist.labels[: 64 * (steps + 1)])
    tiny_test = batches.TensorData(mnist.images[:64], mnist.labels[:64])
    stamps: list[float] = []

    def stamp(n, members, losses):
        sync(device)
        stamps.append(time.perf_counter())

    train_cells([spec([0.1307], [0.3081])], part, tiny_test, config, on_step=stamp)
    wall = (stamps[-1] - stamps[0]) / steps
    three = batches.TensorData(part.images[:192], part.labels[:192])
    counts: list[int] = []
    with CountOps() as ops:
        train_cells(
            [spec([0.1307], [0.3081])], three, tiny_test, config, on_step=lambda *_: counts.append(ops.count)
        )
    flops: list[int] = []
    with FlopCounterMode(display=False) as counter:
        train_cells([spec([0.1307], [0.3081])], three, tiny_test, config,
                    on_step=lambda *_: flops.append(counter.get_total_flops()))  # fmt: skip
    return wall, counts[2] - counts[1], flops[2] - flops[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="MNIST folder (default: ../shared/data, else data/mnist-small)",
    )
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per K")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--launch-us", type=float, default=5.0, help="modelled cost of one kernel launch, µs")
    parser.add_argument(
        "--gpu-tflops", type=float, default=10.0, help="modelled achieved fp32 throughput, TFLOP/s"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    root = args.root or (SHARED if (SHARED / "raw").exists() else ROOT / "data" / "mnist-small")
    if not mnist.raw_folder(root).exists() and (root / "raw").exists():  # ../shared/data/mnist/raw layout
        scratch = Path(tempfile.mkdtemp())
        (scratch / "MNIST").mkdir()
        (scratch / "MNIST" / "raw").symlink_to((root / "raw").resolve())
        root = scratch
    train = mnist.load_mnist(root, train=True, limit=64 * (args.steps + 1))
    split = batches.TensorData.from_uint8(train.images, train.labels)
    steps_per_epoch = math.ceil(60_000 / 64)
    print(f"device {device_name(device)}, torch {torch.__version__}, {args.steps} timed steps of batch 64")
    print(f"model: launch {args.launch_us} µs per operator, {args.gpu_tflops} TFLOP/s achieved (assumptions)")
    alone = one_cell_alone(split, device, args.steps)
    header = f"{'K':>4} {'ms/cell-step':>12} {'ratio':>6} {'ops/cell-step':>13} {'ratio':>6} {'MFLOP/cell-step':>15} {'model GPU s/cell-epoch':>22}"
    print(header)
    rows = []

    def modelled(ops_per_cell: float, flops_per_cell: float) -> float:
        return steps_per_epoch * (
            ops_per_cell * args.launch_us * 1e-6 + flops_per_cell / (args.gpu_tflops * 1e12)
        )

    flops = alone[2]  # per cell-step, whatever K
    base = None
    for k in args.packs:
        wall, ops = one_step_pack(k, split, device, args.steps)
        row = {
            "K": k,
            "wall_s_per_cell_step": wall / k,
            "ops_per_cell_step": ops / k,
            "flops_per_cell_step": flops,
        }
        row["model_gpu_s_per_cell_epoch"] = modelled(row["ops_per_cell_step"], flops)
        base = base or row
        print(
            f"{k:>4} {row['wall_s_per_cell_step'] * 1e3:>12.2f} {base['wall_s_per_cell_step'] / row['wall_s_per_cell_step']:>6.2f}"
            f" {row['ops_per_cell_step']:>13.1f} {base['ops_per_cell_step'] / row['ops_per_cell_step']:>6.1f}"
            f" {flops / 1e6:>15.0f} {row['model_gpu_s_per_cell_epoch']:>22.2f}"
        )
        rows.append(row)
    print(
        f"one cell alone (nn.Module + torch.optim): {alone[0] * 1e3:.2f} ms/step, {alone[1]} ops/step, "
        f"{alone[2] / 1e6:.0f} MFLOP/step, model {modelled(alone[1], alone[2]):.2f} GPU s/epoch"
    )
    cells, epochs = 460, 30  # config/full.yaml
    for row in (rows[0], rows[-1]):
        hours = cells * epochs * row["model_gpu_s_per_cell_epoch"] / 3600
        print(
            f"full study (460 cells x 30 epochs, training steps), pack {row['K']}: model {hours:.1f} GPU-hours"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "rows": rows, "alone": alone,
                                         "launch_us": args.launch_us, "gpu_tflops": args.gpu_tflops}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
