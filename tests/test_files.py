"""Every file that publishes a result, checkpoint, shard or manifest reaches the disk
before its rename (after a node crash the target is the old file or the new one, never empty),
under a temporary name no other writer shares."""

import os
import socket

import pytest

from normsweep.core import files, results
from normsweep.training import checkpoint


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def watched_fsync(fd):
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def watched_replace(source, target):
        seen.append(("rename", str(source)))
        replace(source, target)

    monkeypatch.setattr(files.os, "fsync", watched_fsync)
    monkeypatch.setattr(files.os, "replace", watched_replace)
    return seen


@pytest.mark.parametrize(
    "write",
    [
        lambda p: results.write_json_atomic(p, {"a": 1}),
        lambda p: checkpoint.save_atomic(p, {"epoch": 1}),
    ],
    ids=["result", "checkpoint"],
)
def test_data_reaches_the_disk_before_the_rename_that_publishes_it(tmp_path, calls, write):
    target = tmp_path / "out" / "cell.json"
    write(target)
    (tmp,) = {path for what, path in calls if what == "rename"}
    assert calls[:2] == [("fsync", tmp), ("rename", tmp)]  # the file's data first, then its name
    assert calls[2] == ("fsync", str(target.parent))  # then the folder entry
    assert target.exists() and not list(target.parent.glob(".*.tmp"))


def test_two_writers_never_share_a_temporary_name(tmp_path):
    one, two = files.temp_beside(tmp_path / "x.npy"), files.temp_beside(tmp_path / "x.npy")
    assert one != two and one.parent == tmp_path
    assert f".{socket.gethostname().split('.')[0]}.{os.getpid()}." in one.name


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "cell.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.writing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
