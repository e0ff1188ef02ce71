"""Publishing files on the file systems of a cluster (NFS, Lustre, GPFS), correct with no lock.

Every file that publishes a result, a checkpoint, a shard or a manifest is written under a
temporary name of its own writer (host, process and a random part: two nodes writing the same
file never share one), flushed to disk (``fsync``), then renamed over its target, and the
folder is flushed too, so that after a node crash the target is the old file or the new one,
never empty. A file found damaged is set aside (renamed with a suffix, never deleted).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("normsweep")


def temp_beside(path: str | os.PathLike[str]) -> Path:
    """A temporary name in ``path``'s folder that no other writer uses."""
    path = Path(path)
    host = socket.gethostname().split(".")[0] or "host"
    return path.with_name(f".{path.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (the rename); some file systems refuse it for folders: then the
    file's own fsync is what there is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Flush ``tmp`` to disk and rename it over ``path`` (then flush the folder)."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_folder(Path(path).parent)


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; on success it is published over
    ``path`` (:func:`publish`), on any error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with writing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def set_aside(path: str | os.PathLike[str], why: str) -> Path:
    """Rename a damaged ``path`` out of the way (``<name>.damaged-<time>``), never deleting it,
    with a warning that names both; the new name."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    os.replace(path, aside)
    log.warning("%s is damaged (%s): set aside as %s; going on without it", path, why, aside)
    return aside
