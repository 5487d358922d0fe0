"""The page's Add, Remove and Rebuild: only in the folder the index was built from, only when
they can finish (nothing changes on disk otherwise), and decided under the build lock."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from qa.build import build_index
from qa.errors import QAError
from qa.present import documents
from qa.store.local import LocalStore

APP = str(ROOT / "app.py")
TIMEOUT = 120
NOTES = b"# My notes\n\nRunning shoes with a firm heel protect the knees.\n"
OTHER = b"# Swimming\n\nSwimming in cold water wakes you up in the morning.\n"
THEIRS = b"# Corpus notes\n\nA firm mattress helps back pain at night.\n"
SLEEP = b"# Sleep\n\nSleeping on your side eases back pain.\n"


def files(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def indexed(index: Path) -> list[str]:
    return [d["path"] for d in LocalStore(index).manifest()["documents"]]


@contextlib.contextmanager
def read_only(folder: Path):
    """Make a folder read-only: by its permissions, and for root, whom permissions do not stop,
    by the immutable attribute (`chattr +i`)."""
    folder.chmod(0o555)
    immutable = os.access(folder, os.W_OK)
    try:
        if immutable:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        assert not os.access(folder, os.W_OK), f"cannot make {folder} read-only here"
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.fixture
def two_folders(monkeypatch, tmp_path, embedder) -> Path:
    """The issue's layout: ./corpus/notes.md, and ./mydocs (notes.md, other.md) indexed with
    `qa build --corpus mydocs --index index`; QA_INDEX=index and no QA_CORPUS."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.md").write_bytes(THEIRS)
    (tmp_path / "mydocs").mkdir()
    (tmp_path / "mydocs" / "notes.md").write_bytes(NOTES)
    (tmp_path / "mydocs" / "other.md").write_bytes(OTHER)
    build_index("mydocs", "index", embedder=embedder)
    monkeypatch.setenv("QA_INDEX", "index")
    monkeypatch.delenv("QA_CORPUS", raising=False)
    return tmp_path


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def remove_on_page(at: AppTest, row: int) -> AppTest:
    at.button(key=f"remove-{row}").click().run()
    return at.button(key="confirm-remove").click().run()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    key = next(u.key for u in at.sidebar.file_uploader)
    at.file_uploader(key=key).set_value([(name, data, "application/octet-stream")])
    return at.run()


def manage_controls(at: AppTest) -> list:
    return list(at.file_uploader) + [b for b in at.button
                                     if b.key and b.key.startswith(("remove-", "rebuild"))]


# --- 1. the folder the index was built from, never another -----------------------------------


def test_remove_deletes_in_the_folder_the_index_was_built_from(two_folders):
    at = page()
    assert at.sidebar.expander[0].label == "Documents (2)"
    remove_on_page(at, 0)  # notes.md, as listed
    assert not at.exception and not at.error
    assert files(two_folders / "corpus") == {"notes.md": THEIRS}  # another folder: untouched
    assert files(two_folders / "mydocs") == {"other.md": OTHER}
    assert indexed(two_folders / "index") == ["other.md"]
    assert at.success[0].value == "Removed notes\\.md from the documents and the index."


def test_an_upload_goes_to_the_folder_the_index_was_built_from(two_folders):
    at = upload(page(), "sleep.md", SLEEP)
    assert not at.exception and not at.error
    assert files(two_folders / "corpus") == {"notes.md": THEIRS}
    assert files(two_folders / "mydocs") == {"notes.md": NOTES, "other.md": OTHER,
                                             "sleep.md": SLEEP}  # fmt: skip
    assert indexed(two_folders / "index") == ["notes.md", "other.md", "sleep.md"]


def test_a_corpus_setting_that_differs_from_the_index_turns_changes_off(two_folders,
                                                                        monkeypatch):  # fmt: skip
    """QA_CORPUS names ./corpus, the index was built from ./mydocs: the page does not guess
    which one is meant; it changes neither, and says why."""
    monkeypatch.setenv("QA_CORPUS", "corpus")
    at = page()
    assert at.warning  # stale against ./corpus, as `qa info` says too
    assert not manage_controls(at)
    reason = f"the index was built from {two_folders / 'mydocs'}, not from corpus (QA_CORPUS)."
    shown = [c.value.replace("\\", "") for c in at.caption]
    assert f"Adding documents is off: {reason}" in shown
    assert f"Rebuilding here is off: {reason}" in shown
    assert files(two_folders / "corpus") == {"notes.md": THEIRS}
    assert indexed(two_folders / "index") == ["notes.md", "other.md"]


def test_nothing_is_added_when_the_folder_the_index_was_built_from_is_gone(two_folders):
    (two_folders / "mydocs").rename(two_folders / "moved")
    at = page()
    assert not manage_controls(at)
    assert any("was built from is missing" in c.value for c in at.sidebar.caption)
    assert not (two_folders / "mydocs").exists()


# --- 2. only what can finish ---------------------------------------------------------------


@pytest.mark.parametrize("locked", ["index", "mydocs"])
def test_add_and_remove_are_off_when_the_index_or_the_corpus_is_read_only(two_folders, locked):
    before = files(two_folders)
    with read_only(two_folders / locked):
        at = page()
        assert not manage_controls(at)
        assert any("is read\\-only" in c.value for c in at.sidebar.caption)
        assert at.sidebar.expander[0].label == "Documents (2)"  # still listed
    assert files(two_folders) == before


def test_a_removal_whose_build_fails_deletes_nothing(two_folders, embedder):
    """The index folder turns read-only after the page offered Remove: the build without the
    document fails, and the document stays, on disk and in the index."""
    store, corpus = LocalStore("index"), two_folders / "mydocs"

    def rebuild(without):
        build_index(corpus, store, embedder=embedder, without=without, locked=True)

    with read_only(two_folders / "index"), pytest.raises((QAError, OSError)):
        documents.remove(store, corpus, "notes.md", rebuild)
    assert files(corpus) == {"notes.md": NOTES, "other.md": OTHER}
    assert indexed(two_folders / "index") == ["notes.md", "other.md"]


def test_an_upload_whose_build_fails_is_not_kept(two_folders, embedder):
    store, corpus = LocalStore("index"), two_folders / "mydocs"

    def rebuild():
        build_index(corpus, store, embedder=embedder, locked=True)

    with read_only(two_folders / "index"):
        added = documents.add(store, corpus, [("sleep.md", SLEEP), ("notes.md", NOTES)], rebuild)
    assert added.error is not None and added.saved[0].existed  # notes.md was there already
    assert files(corpus) == {"notes.md": NOTES, "other.md": OTHER}  # sleep.md deleted again
    assert indexed(two_folders / "index") == ["notes.md", "other.md"]


# --- 3. decided under the build lock -------------------------------------------------------


def test_two_sessions_cannot_remove_the_last_two_documents(two_folders, monkeypatch):
    monkeypatch.setenv("QA_CORPUS", "mydocs")  # the folder the index was built from
    first, second = page(), page()
    second.button(key="remove-1").click().run()  # other.md, asked while both were listed
    remove_on_page(first, 0)  # notes.md
    assert not first.error
    second.button(key="confirm-remove").click().run()
    assert not second.exception and not second.success
    assert "other\\.md is the last document in the index" in second.error[0].value
    assert files(two_folders / "mydocs") == {"other.md": OTHER}
    assert indexed(two_folders / "index") == ["other.md"]


def test_removals_at_once_take_turns_under_the_build_lock(two_folders, embedder):
    """Two removals started together (as from two page servers): one goes through, the other
    sees the index as the first left it, and refuses: the corpus is never emptied, and the
    index never lists a deleted file."""
    store, corpus = LocalStore("index"), two_folders / "mydocs"
    start, outcomes = threading.Barrier(2), {}

    def remove(doc: str) -> None:
        def rebuild(without):
            build_index(corpus, LocalStore("index"), embedder=embedder, without=without,
                        locked=True)  # fmt: skip

        start.wait()
        try:
            documents.remove(store, corpus, doc, rebuild)
            outcomes[doc] = "removed"
        except QAError as exc:
            outcomes[doc] = exc.message

    threads = [threading.Thread(target=remove, args=(doc,)) for doc in ("notes.md", "other.md")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes.values())[1:] == ["removed"]
    kept = next(doc for doc, outcome in outcomes.items() if outcome != "removed")
    assert outcomes[kept] == f"{kept} is the last document in the index"
    assert list(files(corpus)) == [kept] == indexed(two_folders / "index")
