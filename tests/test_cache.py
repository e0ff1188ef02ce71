"""The data cache. Two writers of one shard at once prepare it once; a copy is reused only when
its sha256 holds (a damaged one is set aside); a study's own older shard is linked in (copied
where a link fails), not decoded again; with no working lock every write is
still correct."""

import errno
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from normsweep.core.results import write_json_atomic
from normsweep.data import cache, prepare

TINY = Path(__file__).resolve().parents[1] / "data" / "imagenette-tiny"
IMAGE = {"resize": 40, "crop": 32}


@pytest.fixture
def listed(tmp_path):
    listing = prepare.list_folder(TINY, shard_size=16)
    path = tmp_path / "study" / "listing.json"
    path.parent.mkdir()
    write_json_atomic(path, listing)
    shard = listing["val"]["shards"][0]["signature"]
    return path, shard, cache.cache_paths(tmp_path / "cache", "k", "val", 0, shard)


def _into_the_study_folder(path, pixels, manifest):
    """Move a cache shard to where a study kept its own before the cache existed; its stem there."""
    old = path.parent / prepare.shard_stem("val", 0)
    old.parent.mkdir()
    pixels.rename(old.with_suffix(".npy"))
    write_json_atomic(
        old.with_suffix(".json"), {**json.loads(manifest.read_text()), "pixels": old.name + ".npy"}
    )
    manifest.unlink()
    return old


def test_two_writers_at_once_prepare_a_shard_once(listed, monkeypatch):
    path, signature, (pixels, manifest) = listed
    decoded = []
    real = cache.prepare_shard
    monkeypatch.setattr(cache, "prepare_shard", lambda *a, **k: decoded.append(1) or real(*a, **k))
    hows: list[str] = []

    def write():
        hows.append(cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1])

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(hows) == ["prepared", "reused"] and len(decoded) == 1
    kept = json.loads(manifest.read_text())
    assert kept["sha256"] == cache.file_sha256(pixels) and kept["pixels"] == pixels.name
    assert not list(pixels.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_a_damaged_copy_is_prepared_again_and_a_study_shard_is_linked(listed):
    path, signature, (pixels, manifest) = listed
    cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)
    sha = cache.file_sha256(pixels)
    data = bytearray(pixels.read_bytes())
    data[-1] ^= 0xFF
    pixels.write_bytes(bytes(data))  # one byte changed: its sha256 no longer holds
    assert cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1] == "prepared"
    assert cache.file_sha256(pixels) == sha
    (aside,) = pixels.parent.glob(f"{pixels.name}.damaged-*")  # set aside, never deleted
    assert aside.read_bytes() == bytes(data)
    # a shard prepared before the cache existed, in the study's own folder: linked, not decoded
    old = _into_the_study_folder(path, pixels, manifest)
    how = cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1]
    assert how == f"linked from {old.with_suffix('.npy')}" and cache.file_sha256(pixels) == sha
    with pytest.raises(prepare.DataError, match="no listing holds it"):
        cache.provide_shard([path], "val", 0, "0" * 16, IMAGE, pixels, manifest)


def test_a_link_that_fails_across_file_systems_is_a_copy(listed, monkeypatch):
    path, signature, (pixels, manifest) = listed
    cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)
    old = _into_the_study_folder(path, pixels, manifest)

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))

    monkeypatch.setattr(cache.os, "link", cross_device)
    how = cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1]
    assert how == f"copied from {old.with_suffix('.npy')}"
    assert cache.file_sha256(pixels) == json.loads(manifest.read_text())["sha256"]
    assert pixels.stat().st_ino != old.with_suffix(".npy").stat().st_ino
    assert not list(pixels.parent.glob(".*.tmp"))


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])  # NFS nolock, Lustre without flock
def test_a_file_system_that_refuses_locks_is_written_correctly_without_one(listed, monkeypatch, caplog, code):
    path, signature, (pixels, manifest) = listed

    def refuse(handle, operation):
        raise OSError(code, "no locks here")

    monkeypatch.setattr(cache.fcntl, "flock", refuse)
    with caplog.at_level("WARNING", logger="normsweep"):
        assert cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1] == "prepared"
    assert "no lock on this file system" in caplog.text
    assert cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1] == "reused"


RACER = textwrap.dedent(
    """
    import errno, sys, time
    from pathlib import Path
    from normsweep.data import cache, prepare

    def refuse(handle, operation):  # as on two nodes whose locks do not see each other
        raise OSError(errno.ENOLCK, "no locks here")

    cache.fcntl.flock = refuse
    decode = prepare.decode_image
    prepare.decode_image = lambda *a: (time.sleep(0.02), decode(*a))[1]  # both write at once
    listing, signature, pixels, manifest, me = sys.argv[1:]
    Path(me).touch()
    while not Path(me).with_name("go").exists():
        time.sleep(0.005)
    image = {"resize": 40, "crop": 32}
    print(cache.provide_shard([listing], "val", 0, signature, image, Path(pixels), Path(manifest))[1])
    """
)


def test_two_nodes_without_a_common_lock_both_write_one_correct_shard(listed, tmp_path):
    """Two processes with no working lock decode the same shard at the same moment, as two nodes
    on NFS mounted nolock would: each writes its own temporary file, and what is left is one
    pixel file whose sha256 is its manifest's, with no temporary file behind."""
    path, signature, (pixels, manifest) = listed
    racers = []
    for n in range(2):
        me = tmp_path / f"ready-{n}"
        args = [sys.executable, "-c", RACER, str(path), signature, str(pixels), str(manifest), str(me)]
        racers.append((me, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    while not all(me.exists() for me, _ in racers):
        assert all(p.poll() is None for _, p in racers), [p.communicate() for _, p in racers]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outcomes = [p.communicate(timeout=120) for _, p in racers]
    assert [p.returncode for _, p in racers] == [0, 0], outcomes
    assert [out.split()[-1] for out, _ in outcomes] == ["prepared", "prepared"]  # no lock: both decoded
    kept = json.loads(manifest.read_text())
    assert kept["sha256"] == cache.file_sha256(pixels)
    assert cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1] == "reused"
    assert not list(pixels.parent.glob(".*.tmp"))
