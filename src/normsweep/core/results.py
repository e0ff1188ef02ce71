"""The result of one cell: its schema, its atomic write and its read.

One JSON file per cell. NaN (a diverged run) is written as ``null`` so that the files stay
strict JSON; :func:`read_result` turns it back into NaN.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from normsweep.core.files import write_bytes_atomic

SCHEMA_VERSION = 1
STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"

#: Packages whose versions every result records (the summary warns when they differ).
TRACKED_PACKAGES = ("torch", "torchvision", "numpy", "normsweep")


@dataclass
class EpochRecord:
    epoch: int
    test_accuracy: float
    test_loss: float
    train_loss: float
    lr: float
    seconds: float


@dataclass
class CellResult:
    model: str
    dataset: str
    mean_label: str  # the cell's name on the mean axis: "none", "dataset", "0.1307", ...
    std_label: str
    mean: list[float] | None  # the values it trained with, one per channel; None: no normalization
    std: list[float] | None
    seed: int
    status: str
    final_accuracy: float
    best_accuracy: float
    epochs_requested: int
    n_train: int
    n_test: int
    batch_size: int
    test_batch_size: int
    lr: float
    wall_seconds: float
    device: str
    device_name: str
    epochs: list[EpochRecord] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=platform.node)
    init_weight: float = 1.0  # factors on the first layer's initial weights and biases
    init_bias: float = 1.0
    pack: str = ""  # the pack it trained in (the engine runs packs: normsweep.training.engine); "" when it trained alone
    pack_size: int = 1
    num_classes: int = 0  # classes of the data set (chance is 1 / num_classes); 0: not recorded
    data: str = ""  # what it trained and tested on: the data key, the subsets and how they were sampled
    data_version: str = ""  # the version of the data's content (normsweep.core.provenance); "": not recorded
    precision: str = "fp32"  # fp32 | tf32 | bf16: the arithmetic it trained and evaluated in
    # how its classifier met the folder's classes (normsweep.data.classes): new, mapped, kept, replaced;
    # "" for results made before it was recorded. predict_over: a mapped head's argmax (all | folder)
    head: str = ""
    predict_over: str = ""
    # how it computed on its device (normsweep.training.devices.Execution): channels_last, cudnn_benchmark,
    # compile; {} for results made before these were settings
    execution: dict[str, Any] = field(default_factory=dict)
    arch: str = ""  # the architecture (normsweep.models.catalog): "" for results made before models had one
    weights: str = ""  # the weights it started from: a torchvision name or a file; "": random
    preprocessing: dict[str, Any] | None = None  # resize, crop, interpolation; the weights' own values
    # training images left out of each epoch (a last batch of one image under batch norm: engine.left_out)
    train_left_out: int = 0
    schema_version: int = SCHEMA_VERSION
    # an evaluation cell's predicted class per test image, in the split's order (kept beside the
    # result by write_predictions, not in it)
    predictions: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["predictions"]
        return out


class ResultError(ValueError):
    """A cell result that cannot be read; the message names the file and the fix."""


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions.update(code_version())
    return versions


#: The package's folder: src/normsweep.
PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def package_modules(*subpackages: str) -> tuple[str, ...]:
    """The package's modules as dotted names under it (``training.engine``), of these
    subpackages (all of them when none is named); ``__init__`` files included. Walked once per
    process: every member's fingerprint asks for it."""
    found = []
    for source in PACKAGE.rglob("*.py"):
        name = ".".join(source.relative_to(PACKAGE).with_suffix("").parts)
        if not subpackages or name.split(".")[0] in subpackages:
            found.append(name)
    return tuple(sorted(found))


@functools.cache
def source_hash(modules: tuple[str, ...]) -> str:
    """A hash of these modules' source files (dotted names under the package: ``training.engine``)."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        source = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
        digest.update(name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def code_version() -> dict[str, str]:
    """The training code a result was made with: ``code`` is a hash of the normsweep package's
    source files (the same code gives the same hash in any checkout, clone or conda env),
    ``commit`` the git commit of the checkout when there is one ("+dirty" with local changes
    to the package), for finding that code again."""
    version = {"code": source_hash(package_modules())}
    try:
        run = functools.partial(subprocess.run, cwd=PACKAGE, capture_output=True, text=True, timeout=10)
        head = run(["git", "rev-parse", "HEAD"])
        if head.returncode == 0:
            dirty = run(["git", "status", "--porcelain", "--", "."]).stdout.strip()
            version["commit"] = head.stdout.strip()[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write to a temporary file of this writer in the target's folder, fsync it, then rename
    it over the target: a reader (or a killed job, a crashed node) sees the old file or the new
    one, never half (:mod:`normsweep.core.files`)."""
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Strict JSON (NaN written as null), atomically."""
    write_text_atomic(path, json.dumps(_nan_to_none(payload), indent=2, allow_nan=False) + "\n")


def write_result(path: str | os.PathLike[str], result: CellResult) -> None:
    write_json_atomic(path, result.to_dict())


def predictions_path(result_path: str | os.PathLike[str]) -> Path:
    """Where an evaluation cell keeps its per-image predictions: beside its result."""
    path = Path(result_path)
    return path.with_name(path.stem + ".predictions.npz")


def write_predictions(result_path: str | os.PathLike[str], predicted: Any, labels: Any) -> None:
    """An evaluation cell's predicted classes and the true labels, compressed (int16; a few
    hundred KB for ImageNet's 50,000 validation images), atomically, before its result."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, predicted=np.asarray(predicted, dtype=np.int16), label=np.asarray(labels, dtype=np.int16)
    )
    write_bytes_atomic(predictions_path(result_path), buffer.getvalue())


def read_correct(result_path: str | os.PathLike[str]) -> Any:
    """Which test images an evaluation cell classified correctly (bool array), or None when
    it kept no predictions."""
    import numpy as np

    path = predictions_path(result_path)
    if not path.exists():
        return None
    with np.load(path) as saved:
        return saved["predicted"] == saved["label"]


_FLOAT_FIELDS = ("final_accuracy", "best_accuracy")
_EPOCH_FLOAT_FIELDS = ("test_accuracy", "test_loss", "train_loss", "lr", "seconds")


def read_result(path: str | os.PathLike[str]) -> CellResult:
    """Read a cell result, checking its schema; ``null`` numbers come back as NaN.

    A file that is not a complete result (cut short by a full disk or an interrupted copy)
    raises :class:`ResultError` naming the file and the fix."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as error:
        raise ResultError(
            f"{path}: not a complete cell result ({error}); delete it and rerun snakemake, "
            f"which trains this cell again"
        ) from None
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ResultError(
            f"{path}: result schema version {raw.get('schema_version')!r}, expected "
            f"{SCHEMA_VERSION}; delete the file to recompute this cell"
        )
    try:
        for key in _FLOAT_FIELDS:
            raw[key] = math.nan if raw[key] is None else float(raw[key])
        epochs = []
        for record in raw.pop("epochs"):
            for key in _EPOCH_FLOAT_FIELDS:
                record[key] = math.nan if record[key] is None else float(record[key])
            epochs.append(EpochRecord(**record))
        return CellResult(epochs=epochs, **raw)
    except (TypeError, KeyError, ValueError) as error:
        raise ResultError(
            f"{path}: not a normsweep cell result (missing or bad field {error}); delete it and "
            f"rerun snakemake, which trains this cell again"
        ) from None


def configured(results: Sequence[CellResult], roles: Mapping[str, Any], seeds: Iterable[int]) -> list[int]:
    """The positions in ``results`` of the configured cells' (``roles``: 'mean|std' keys, as
    normsweep.core.cells.cell_roles; ``seeds``): a pack's file still lists the members that were
    dropped from the config after it ran, which no table, statistic or warm start may count."""
    wanted = {int(s) for s in seeds}
    return [i for i, r in enumerate(results) if f"{r.mean_label}|{r.std_label}" in roles and r.seed in wanted]


def result_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Cell result files from a rule's inputs: a pack's file (``pack~<id>.json``, a round's ``pack.json``) stands for
    its members' results, which it lists; any other path is a cell result itself."""
    out: list[str] = []
    for path in map(str, paths):
        if Path(path).name.startswith("pack~") or Path(path).name == "pack.json":
            try:
                out += json.loads(Path(path).read_text())["results"]
            except (ValueError, KeyError) as error:
                raise ResultError(
                    f"{path}: not a complete pack record ({error}); delete it and rerun snakemake"
                ) from None
        else:
            out.append(path)
    return list(dict.fromkeys(out))  # a cell made again after its pack ran is listed twice
