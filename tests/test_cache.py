"""Issue 30.3: the data cache. Two writers of one shard at once prepare it once; a copy is
reused only when its sha256 holds; a study's own older shard is linked in, not decoded again."""

import json
import threading
from pathlib import Path

import pytest

from normsweep import cache, images
from normsweep.results import write_json_atomic

TINY = Path(__file__).resolve().parents[1] / "data" / "imagenette-tiny"
IMAGE = {"resize": 40, "crop": 32}


@pytest.fixture
def listed(tmp_path):
    listing = images.list_folder(TINY, shard_size=16)
    path = tmp_path / "study" / "listing.json"
    path.parent.mkdir()
    write_json_atomic(path, listing)
    shard = listing["val"]["shards"][0]["signature"]
    return path, shard, cache.cache_paths(tmp_path / "cache", "k", "val", 0, shard)


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
    # a shard prepared before the cache existed, in the study's own folder: linked, not decoded
    old = path.parent / images.shard_stem("val", 0)
    old.parent.mkdir()
    pixels.rename(old.with_suffix(".npy"))
    write_json_atomic(
        old.with_suffix(".json"), {**json.loads(manifest.read_text()), "pixels": old.name + ".npy"}
    )
    manifest.unlink()
    how = cache.provide_shard([path], "val", 0, signature, IMAGE, pixels, manifest)[1]
    assert how.startswith("linked from") and cache.file_sha256(pixels) == sha
    with pytest.raises(images.DataError, match="no listing holds it"):
        cache.provide_shard([path], "val", 0, "0" * 16, IMAGE, pixels, manifest)
