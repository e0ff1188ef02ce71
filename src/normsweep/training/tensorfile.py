"""Reading the project's own tensor files (checkpoints, image caches) without unpickling code.

They hold only tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)``
reads them; a file that holds anything else (for instance one placed in a shared results
folder to run code when a cell resumes) is refused with its path, before any of it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


class UnsafeFileError(ValueError):
    """A tensor file that is corrupt or holds more than plain data."""


class DamagedFileError(UnsafeFileError):
    """A tensor file that cannot be read at all (empty, cut short, not a tensor file)."""


def load(path: str | Path, what: str, map_location: Any = None) -> Any:
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsafeFileError(
            f"{path}: refused to load this {what}: it holds more than tensors and plain values "
            f"({first}). normsweep never writes such a file; if you did not put it there, delete "
            f"it (the cell is then trained from its start) and check who can write to this folder"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise DamagedFileError(
            f"{path}: this {what} cannot be read ({error}); delete it and rerun"
        ) from error
