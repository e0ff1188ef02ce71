"""The yardstick of the pack tolerances (tests/test_pack.py): how far the one-cell training
code drifts from itself when only the CPU thread count changes, at the protocol's learning
rate (Adadelta 1.0), step by step. A measurement, not a test: on some machines the kernels
round alike at 1 and 2 threads (measured 1.8e-7 at step 20 on one, 3.4e-3 on another).

    .venv/bin/python scripts/bench/thread_drift.py --threads 1 2 --steps 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from normsweep.core.spec import CellSpec, TrainConfig  # noqa: E402
from normsweep.data import batches, mnist  # noqa: E402
from normsweep.training.runner import train_cells  # noqa: E402


def step_losses(threads: int, steps: int, tr: batches.TensorData, te: batches.TensorData) -> list[float]:
    losses: list[float] = []
    config = TrainConfig(epochs=1, threads=threads, deterministic=True)
    spec = CellSpec("lenet", "mnist", "0.1307", "0.3081", [0.1307], [0.3081], 1998)
    part = batches.TensorData(tr.images[: steps * config.batch_size], tr.labels[: steps * config.batch_size])
    train_cells([spec], part, te, config, on_step=lambda n, members, loss: losses.append(float(loss[0])))
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    tr = mnist.load_mnist(ROOT / "data" / "mnist-small", train=True)
    te = mnist.load_mnist(ROOT / "data" / "mnist-small", train=False, limit=100)
    tr, te = (
        batches.TensorData.from_uint8(tr.images, tr.labels),
        batches.TensorData.from_uint8(te.images, te.labels),
    )
    a, b = (step_losses(t, args.steps, tr, te) for t in args.threads)
    print(f"step  loss ({args.threads[0]} threads)  loss ({args.threads[1]} threads)  relative difference")
    for step, (x, y) in enumerate(zip(a, b, strict=True), 1):
        print(f"{step:4d}  {x:.8f}  {y:.8f}  {abs(x - y) / abs(x):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
