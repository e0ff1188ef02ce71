"""Which device a run uses, what it is called in a result, and how it computes there: torch's
determinism switch, the precision, and the execution switches (channels_last, cuDNN's
benchmark, torch.compile), which change how fast a cell runs, not what it computes.
A primitive: it imports nothing of the package."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch


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
        # warn_only: an operation without a deterministic CUDA kernel runs as it is (and the
        # result records it: nondeterministic_ops) instead of failing the job at its first backward
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _adaptive(module: torch.nn.Module) -> bool:
    size = module.output_size  # type: ignore[attr-defined]
    sizes = size if isinstance(size, tuple | list) else (size,)
    return any(s != 1 for s in sizes)  # an output of 1 x 1 is a mean (deterministic)


#: Modules whose CUDA kernels have no deterministic version (torch.use_deterministic_algorithms'
#: documented list), with the pass that lacks it and, where it depends on them, the settings.
NONDETERMINISTIC_CUDA: tuple[tuple[type[torch.nn.Module], str, Callable[[torch.nn.Module], bool]], ...] = (
    (torch.nn.AvgPool3d, "backward", lambda m: True),
    (torch.nn.AdaptiveAvgPool2d, "backward", _adaptive),
    (torch.nn.AdaptiveAvgPool3d, "backward", _adaptive),
    (torch.nn.MaxPool3d, "backward", lambda m: True),
    (torch.nn.AdaptiveMaxPool2d, "backward", lambda m: True),
    (torch.nn.FractionalMaxPool2d, "backward", lambda m: True),
    (torch.nn.FractionalMaxPool3d, "backward", lambda m: True),
    (torch.nn.MaxUnpool1d, "forward", lambda m: True),
    (torch.nn.MaxUnpool2d, "forward", lambda m: True),
    (torch.nn.MaxUnpool3d, "forward", lambda m: True),
    (torch.nn.Upsample, "backward", lambda m: m.mode in ("linear", "bilinear", "bicubic", "trilinear")),  # type: ignore[attr-defined]
    (torch.nn.ReflectionPad1d, "backward", lambda m: True),
    (torch.nn.ReflectionPad2d, "backward", lambda m: True),
    (torch.nn.ReflectionPad3d, "backward", lambda m: True),
    (torch.nn.ReplicationPad3d, "backward", lambda m: True),
    (torch.nn.CTCLoss, "backward", lambda m: True),
    (torch.nn.EmbeddingBag, "backward", lambda m: m.mode == "max"),  # type: ignore[attr-defined]
)


def nondeterministic_ops(model: torch.nn.Module) -> list[str]:
    """The modules of ``model`` that compute without a deterministic kernel on CUDA, named with
    their pass (``features.5: AdaptiveAvgPool2d(output_size=(7, 7)) backward``): what a
    ``deterministic: true`` run on a GPU does not make deterministic."""
    found = []
    for name, module in model.named_modules():
        for kind, which, applies in NONDETERMINISTIC_CUDA:
            if type(module) is kind and applies(module):
                found.append(f"{name or type(model).__name__}: {module} {which}")
    return found


PRECISIONS = ("fp32", "tf32", "bf16")


def set_precision(precision: str) -> None:
    """The matmul and cuDNN TF32 switches for ``precision`` (on for tf32 only: fp32 is float32
    everywhere, as a CPU computes; bf16 is an autocast, :func:`autocast`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's autocast: bfloat16 for bf16 (on the CPU too); nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def switch(value: object, auto: bool, key: str) -> bool:
    """A setting that is ``auto``, ``true`` or ``false`` (the strings a job's resources carry
    too) as a bool; ``auto`` takes ``auto``."""
    if value is None or value == "auto":
        return auto
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"training.{key}: {value!r} is none of auto, true, false")


@dataclass(frozen=True)
class Execution:
    """How a run computes on its device, resolved from the training settings (``auto``: what
    suits the device). None of it changes what a cell is, only how fast it runs (and the float
    rounding, as another device does), so none of it retrains a finished cell.

    - ``channels_last``: convolutional networks and their input batches in NHWC, the layout
      tensor cores read; ``auto``: on CUDA with tf32 or bf16 (fp32 runs no tensor cores, and
      keeps the notebook's layout). Dropout on feature maps draws its mask in memory order,
      so a network with it (LeNet) draws other, equally random masks in NHWC, as another
      device does.
    - ``cudnn_benchmark``: cuDNN times its convolution algorithms on the first batch of each
      shape and keeps the fastest (every batch but an epoch's last has one shape); ``auto``:
      on CUDA unless ``deterministic`` (the timing picks algorithms run to run).
    - ``compile``: the step's forward pass through ``torch.compile`` (fewer kernel launches
      for a small network; a compile of a minute or so at the start); off unless asked. Its
      random draws come from torch's generator as uncompiled (inductor's ``fallback_random``),
      so a compiled cell draws the same dropout masks as its uncompiled run."""

    channels_last: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    # a deterministic run on CUDA: the network's operations without a deterministic kernel
    nondeterministic: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, device: torch.device, deterministic: bool, channels_last: object = "auto",
                cudnn_benchmark: object = "auto", compile: object = False, precision: str = "fp32") -> Execution:  # fmt: skip
        cuda = device.type == "cuda"
        benchmark = switch(cudnn_benchmark, cuda and not deterministic, "cudnn_benchmark")
        if benchmark and deterministic:
            raise ValueError(
                "training.cudnn_benchmark: true with training.deterministic: true: cuDNN's benchmark "
                "picks algorithms by timing them, so runs differ; set cudnn_benchmark to auto or false"
            )
        tensor_cores = cuda and precision in ("tf32", "bf16")
        return cls(
            switch(channels_last, tensor_cores, "channels_last"), benchmark, switch(compile, False, "compile")
        )

    def apply(self) -> None:
        """The process-wide switch: cuDNN's benchmark."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channels_last": self.channels_last,
            "cudnn_benchmark": self.cudnn_benchmark,
            "compile": self.compile,
        }
        if self.nondeterministic:
            out["nondeterministic"] = list(self.nondeterministic)
        return out

    def layout(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in the run's memory format (its convolutions' weights NHWC with channels_last)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def compiled(self, forward: Callable[..., Any]) -> Callable[..., Any]:
        """``forward`` compiled when the run compiles (the module or function itself stays as
        it is: its state_dict keeps its keys); else ``forward``."""
        if not self.compile:
            return forward
        import torch._inductor.config as inductor

        inductor.fallback_random = True  # dropout draws from torch's generator: the uncompiled run's masks
        return torch.compile(forward, dynamic=False)


#: The plain execution: NCHW, no benchmark, no compile (the CPU's, and a kind's default).
PLAIN = Execution()


def free_memory(device: torch.device) -> int | None:
    """Free memory of a CUDA device, or the machine's available memory for the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
