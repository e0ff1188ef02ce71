from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from normsweep.core.cells import data_key

# Four workers on two cores (pyproject.toml), and SLURM's jobs beside them: one math thread per
# process (pytest's workers, the snakemake runs and their jobs inherit it). Several OpenMP
# threads per process on a full machine spin on each other (the CPU bench: 45 s instead of 19 s).
# A test that wants more threads asks for them (TrainConfig.threads).
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

ROOT = Path(__file__).resolve().parents[1]
SMALL_MNIST = ROOT / "data" / "mnist-small"
SHARED_MNIST_RAW = ROOT.parent / "shared" / "data" / "mnist" / "raw"
BIN = Path(sys.executable).parent
#: A user's own network (arch "mylab_nets:SmallCNN"): no layer named conv1, one input
#: channel (so it reads MNIST).
SMALL_CNN = """
import torch.nn as nn


class SmallCNN(nn.Module):
    # a user's network: no layer named conv1, one input channel (so it reads MNIST)

    def __init__(self, width=8, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x))
"""


def test_config(name: str = "config.yaml") -> dict:
    """One of the tiny study configs in .test/ (runnable by hand from the repository's root),
    with its data folders made absolute so that a test can run it in any folder."""
    config = yaml.safe_load((ROOT / ".test" / name).read_text())
    for block in config["models"].values():
        block["data"] = str(ROOT / block["data"])
    return config


test_config.__test__ = False  # a helper, not a test


@pytest.fixture
def demo_folder(tmp_path: Path) -> Path:
    """A fresh working folder with the repository's demo config and data, as a new clone has
    them (the repository's own results/ may hold a run of the demo)."""
    work = tmp_path / "demo"
    (work / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "config.yaml", work / "config" / "config.yaml")
    (work / "data").symlink_to(ROOT / "data")
    return work


@pytest.fixture
def full_mnist(tmp_path: Path) -> Path:
    """The real MNIST files from ../shared/data, in torchvision's layout."""
    if not SHARED_MNIST_RAW.exists():
        pytest.skip("../shared/data/mnist is not present")
    (tmp_path / "MNIST").mkdir()
    (tmp_path / "MNIST" / "raw").symlink_to(SHARED_MNIST_RAW)
    return tmp_path


@pytest.fixture
def small_mnist_copy(tmp_path: Path) -> Path:
    target = tmp_path / "mnist"
    shutil.copytree(SMALL_MNIST, target)
    return target


def snakemake(
    *args: str, cwd: Path, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real snakemake of this environment on the project's workflow, with the
    local profile as a user would (``env``: variables added to this process's environment)."""
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(ROOT / "workflow" / "Snakefile"),
            "--profile",
            str(ROOT / "profiles" / "local"),
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def tiny_config(**grid) -> dict:
    """.test/config.yaml, with another grid when one is given."""
    config = test_config()
    if grid:
        config["models"]["lenet"]["grid"] = grid
    return config


def data_dir(work, config: dict, model: str = "lenet"):
    """results/<study>/<model>/data/<key>/ of a config (the key: normsweep.core.cells.data_key)."""
    block = config["models"][model]
    return work / "results" / config["study"] / model / "data" / data_key(block, model != "lenet")


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake plan."""
    rows = [line.split() for line in output.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def train_one(spec, train, test, config, on_step=None):
    """One cell trained alone, as its job trains it (the engine with K = 1)."""
    from normsweep.training.runner import train_cells

    return train_cells([spec], train, test, config, spec.checkpoint, on_step=on_step)[0]


def kill_in_epoch_2(module, name: str, run) -> None:
    """Call ``run()`` with ``module.name`` (an evaluation function) raising KeyboardInterrupt
    ("time limit") at its second call: a run killed during epoch 2, after epoch 1's checkpoint.
    ``module.name`` is restored afterwards."""
    real, calls = getattr(module, name), {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("time limit")
        return real(*args, **kwargs)

    setattr(module, name, killed)
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
    finally:
        setattr(module, name, real)


#: The longest test files first (pytest-xdist hands out one file per worker in this order): the
#: SLURM file, which mostly waits on the scheduler, starts at once and the shorter files fill
#: the other workers around the long ones (longest first keeps the last worker from idling).
LONGEST_FIRST = [  # seconds each took in a full run on 2 cores (2026-12-08)
    "test_slurm.py",  # 365
    "test_workflow.py",  # 320
    "test_workflow_refine.py",  # 230
    "test_workflow_images.py",  # 175 (its evaluation-only study merged into the zoo's since)
    "test_pack.py",  # 110
    "test_workflow_zoo.py",  # 90
    "test_train.py",  # 65
    "test_plan.py",  # 55
    "test_workflow_extras.py",  # 45
    "test_bench.py",  # 30
    "test_images.py",  # 30
    "test_multinet.py",  # 28
    "test_module.py",  # 22
    "test_docs.py",  # 20
    "test_catalog.py",  # 10
    "test_execution.py",  # 10
]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The SLURM tests are the suite's longest chain and their cluster's jobs stand for a
    dedicated node's: the workers running other files, and what they start, yield the CPU to
    them (nice 5; slurmd, at nice 0, hands its own priority on to the jobs)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0 if item.path.name == "test_slurm.py" else 5)
        except PermissionError:  # back to 0 needs root: that worker stays behind, nothing else
            pass


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: test order kept
