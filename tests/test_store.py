"""The index folder: atomic switch, clean-up, lock, checksums before parsing, no unpickling."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import reseal, write_generation

from qa.errors import IndexCorruptError, IndexMissingError, QAError
from qa.ingest.chunking import Chunk
from qa.store import folder as store
from qa.store import local_generation, local_writer
from qa.store.local import LocalStore
from qa.store.manifest import FORMAT_VERSION

DIM = 8


def tiny_build(index_dir: Path, n: int = 3, seed: int = 0, dim: int = DIM) -> Path:
    """Write a small build straight through the store (no model needed)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(i, f"doc{seed}.txt", None, 0, 5, f"text{i}") for i in range(n)]
    manifest = {
        "model": {"id": "test-model", "dim": dim},
        "chunking": {"version": 1, "max_tokens": 254, "overlap": 1},
        "documents": [{"path": f"doc{seed}.txt", "title": "T", "sha256": "0", "chunks": n}],
        "chunks": n,
        "corpus": "",
    }
    write_generation(index_dir, manifest, chunks, vectors)
    return store.current_build(index_dir)


def test_write_then_load_round_trip(tmp_path):
    build = tiny_build(tmp_path, n=4)
    assert (tmp_path / "current").is_symlink()
    assert store.current_build(tmp_path) == build.resolve()
    loaded = LocalStore(tmp_path).open()
    assert [c.text for c in loaded.chunks] == ["text0", "text1", "text2", "text3"]
    assert loaded.vectors.shape == (4, DIM) and loaded.dense_index.ntotal == 4
    manifest = json.loads((build / "manifest.json").read_text())
    arrays = {"sentences", "sentence_vectors", "bm25_data", "bm25_indices", "bm25_indptr",
              "bm25_vocab"}
    assert set(manifest["arrays"]) == arrays
    assert set(manifest["files"]) == {"chunks.jsonl", "vectors.npy", "dense.faiss",
                                      *(f"{name}.npy" for name in arrays)}
    assert manifest["format"] == FORMAT_VERSION
    assert manifest["keys"] == ["key-0", "key-1", "key-2", "key-3"]


def test_new_build_replaces_old_and_removes_it(tmp_path):
    first = tiny_build(tmp_path, seed=1)
    second = tiny_build(tmp_path, seed=2)
    assert store.current_build(tmp_path) == second.resolve()
    assert not first.exists()
    assert sorted(p.name for p in (tmp_path / "builds").iterdir()) == [second.name]
    assert LocalStore(tmp_path).open().chunks[0].doc == "doc2.txt"


def test_clean_up_removes_leftovers_of_killed_builds_only(tmp_path):
    live = tiny_build(tmp_path)
    builds = tmp_path / "builds"
    (builds / "20250101T000000-dead.tmp").mkdir()
    (builds / "20250101T000000-dead.tmp" / "chunks.jsonl").write_text("half")
    shutil.copytree(live, builds / "20250101T000001-complete")  # renamed, never switched to
    os.symlink("builds/nowhere", tmp_path / ".current.abcd1234")  # link made, never swapped in
    before = LocalStore(tmp_path).open()
    removed = store.clean_up(tmp_path)
    assert {p.name for p in removed} == {
        "20250101T000000-dead.tmp", "20250101T000001-complete", ".current.abcd1234"
    }
    assert [p.name for p in builds.iterdir()] == [live.name]
    assert not os.path.lexists(tmp_path / ".current.abcd1234")
    after = LocalStore(tmp_path).open()
    assert after.path == before.path and np.array_equal(after.vectors, before.vectors)


def test_failed_write_leaves_no_tmp_and_keeps_live(tmp_path, monkeypatch):
    live = tiny_build(tmp_path)

    def full_disk(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(local_writer, "write_file", full_disk)
    with pytest.raises(QAError, match="cannot write the index in .*: No space left on device"):
        tiny_build(tmp_path, seed=5)
    assert store.current_build(tmp_path) == live.resolve()
    assert [p.name for p in (tmp_path / "builds").iterdir()] == [live.name]


def test_missing_index(tmp_path):
    with pytest.raises(IndexMissingError) as info:
        LocalStore(tmp_path / "nothing").open()
    assert "no index at" in info.value.message and "qa build" in info.value.hint
    tiny_build(tmp_path)
    shutil.rmtree(tmp_path / "builds")  # `current` now dangles
    with pytest.raises(IndexMissingError):
        LocalStore(tmp_path).open()


def test_current_names_the_live_build_as_the_folder_walk_does(tmp_path):
    """`LocalStore.current` (read before every served answer) agrees with `current_build`:
    no folder, no link, a link whose build is gone, a live build, a newer one."""
    live = LocalStore(tmp_path / "index")
    assert live.current() is None  # no folder
    (tmp_path / "index").mkdir()
    assert live.current() is None  # no link
    first = tiny_build(tmp_path / "index")
    assert live.current() == first.name == store.current_build(tmp_path / "index").name
    second = tiny_build(tmp_path / "index", seed=1)
    assert live.current() == second.name != first.name
    shutil.rmtree(second)  # `current` now dangles
    assert live.current() is None is store.current_build(tmp_path / "index")


@pytest.mark.parametrize("name", ["chunks.jsonl", "vectors.npy", "dense.faiss"])
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_file_is_caught_by_checksum_before_parsing(tmp_path, monkeypatch, name, damage):
    build = tiny_build(tmp_path)
    path = build / name
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        path.unlink()
    import faiss

    parsed = []
    monkeypatch.setattr(np, "load", lambda *a, **k: parsed.append("np.load"))
    monkeypatch.setattr(faiss, "deserialize_index", lambda *a: parsed.append("faiss"))
    with pytest.raises(IndexCorruptError) as info:
        LocalStore(tmp_path).open()
    assert "qa build" in info.value.hint
    assert parsed == []  # nothing was parsed: the checksum failed first


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"format": 99}', '{"format": 1}', '{"format": 1, "model": {"id": 3}}'],
)
def test_bad_manifest(tmp_path, text):
    build = tiny_build(tmp_path)
    (build / "manifest.json").write_text(text)
    with pytest.raises(IndexCorruptError) as info:
        LocalStore(tmp_path).open()
    assert info.value.hint


def test_manifest_that_disagrees_with_the_files(tmp_path):
    build = tiny_build(tmp_path, n=3)
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["model"]["dim"] = 16  # the files hold 8-dimensional vectors
    reseal(build, manifest)
    with pytest.raises(IndexCorruptError) as info:
        LocalStore(tmp_path).open()
    assert "inconsistent" in info.value.message


def test_pickled_vectors_are_never_unpickled(tmp_path):
    """A vectors.npy holding a pickle, even with a matching checksum, is refused unexecuted."""
    build = tiny_build(tmp_path)
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(build / "vectors.npy", "wb") as fh:
        np.save(fh, np.array([Payload()], dtype=object), allow_pickle=True)
    reseal(build)  # the pickle's checksum in the manifest
    with pytest.raises(IndexCorruptError) as info:
        LocalStore(tmp_path).open()
    assert "cannot be read" in info.value.message
    assert not marker.exists()


def test_load_retries_when_a_build_goes_live_meanwhile(tmp_path, monkeypatch):
    """A reader that resolved the old build while a new one went live (and removed the old)
    starts again on the new build instead of failing."""
    tiny_build(tmp_path, seed=1)
    real_verify = local_generation._verify
    calls = []

    def verify_after_a_rebuild(build, manifest, names):
        if not calls:
            calls.append(build)
            tiny_build(tmp_path, seed=2)  # switches and removes `build`
        return real_verify(build, manifest, names)

    monkeypatch.setattr(local_generation, "_verify", verify_after_a_rebuild)
    loaded = LocalStore(tmp_path).open()
    assert loaded.chunks[0].doc == "doc2.txt"
    assert not calls[0].exists()


def test_lock_refuses_a_second_build_with_a_clear_message(tmp_path):
    held = store.lock(tmp_path)
    try:
        with pytest.raises(QAError) as info:
            store.lock(tmp_path)
        assert "another `qa build` is running" in info.value.message
        assert "--wait" in info.value.hint
        with pytest.raises(QAError) as info:
            store.lock(tmp_path, timeout=0.2)
        assert "did not finish" in info.value.message
    finally:
        held.release()
    store.lock(tmp_path).release()  # free again


def test_lock_wait_queues_behind_the_running_build(tmp_path):
    held = store.lock(tmp_path)
    got = []

    def second():
        lock = store.lock(tmp_path, timeout=-1)
        got.append(time.monotonic())
        lock.release()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert got == []  # still waiting
    released = time.monotonic()
    held.release()
    thread.join(10)
    assert len(got) == 1 and got[0] >= released


def test_unreadable_index_folder_is_a_user_error(tmp_path, monkeypatch):
    tiny_build(tmp_path)
    real_exists = Path.exists

    def exists(self, *args, **kwargs):
        if self == tmp_path / "current":
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *args, **kwargs)

    def readlink(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "exists", exists)
    monkeypatch.setattr(os, "readlink", readlink)
    with pytest.raises(QAError) as info:
        LocalStore(tmp_path).open()
    assert "Permission denied" in info.value.message and info.value.hint
    with pytest.raises(QAError) as info:
        LocalStore(tmp_path).current()
    assert "Permission denied" in info.value.message
