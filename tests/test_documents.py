"""qa.present.documents: who may add and remove documents, safe names, saving and removing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.errors import QAError
from qa.present import documents
from qa.store.local import LocalStore

NOTE = b"# Sleep\n\nA firm mattress helps back pain at night.\n"


def files(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(
    "name, clean",
    [
        ("notes.md", "notes.md"),
        ("../../etc/evil.txt", "evil.txt"),
        ("C:\\Users\\me\\report.PDF", "report.PDF"),
        (".hidden.txt", "hidden.txt"),
        ("...notes.txt", "notes.txt"),
        ("-.txt", "-.txt"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("we ird<>|?*name.md", "we ird_____name.md"),
        ("  spaced   out .md", "spaced out.md"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC
        ("x" * 300 + ".html", "x" * (documents.MAX_NAME_CHARS - 5) + ".html"),
    ],
)
def test_clean_name(name, clean):
    assert documents.clean_name(name) == clean


@pytest.mark.parametrize("name", ["scan.doc", "noext", "archive.tar.gz", "", "a.txt/"])
def test_clean_name_refuses_types_qa_does_not_read(name):
    with pytest.raises(QAError) as info:
        documents.clean_name(name)
    assert "cannot be read" in info.value.message and ".pdf" in info.value.hint


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_a_cleaned_name_never_escapes_the_corpus_or_hides(name):
    try:
        clean = documents.clean_name(name + ".txt")
    except QAError:
        return
    assert "/" not in clean and "\\" not in clean and clean not in (".", "..")
    assert not clean.startswith((".", " ")) and clean.lower().endswith(".txt")
    assert len(clean) <= documents.MAX_NAME_CHARS
    assert len(clean.encode()) <= documents.MAX_NAME_BYTES
    assert all(ch.isprintable() for ch in clean)


def test_a_long_name_in_a_script_of_wide_characters_is_cut_by_bytes(tmp_path):
    """86 CJK characters are 258 bytes of UTF-8, over the 255 a file name may have: the upload
    was refused with "File name too long" and a hint about folder permissions."""
    name = "慢性中背部疼痛的原因与治疗" * 8 + ".txt"  # 104 characters, 308 bytes
    saved = documents.save_upload(tmp_path, name, NOTE)
    assert saved.path.endswith(".txt") and saved.path.startswith("慢性中背部疼痛")
    assert len(saved.path.encode()) <= documents.MAX_NAME_BYTES
    other = documents.save_upload(tmp_path, name, b"Another note about sleep.\n")
    assert other.path == saved.path.removesuffix(".txt") + "-2.txt"  # the numbered name fits
    assert files(tmp_path) == {saved.path: NOTE, other.path: b"Another note about sleep.\n"}


def test_save_upload_saves_under_the_clean_name(tmp_path):
    saved = documents.save_upload(tmp_path, "../notes.md", NOTE)
    assert (saved.path, saved.existed, saved.renamed) == ("notes.md", False, False)
    assert files(tmp_path) == {"notes.md": NOTE}  # no temporary file left behind


def test_an_existing_name_is_never_overwritten(tmp_path):
    (tmp_path / "notes.md").write_bytes(b"# Mine\n\nKeep me.\n")
    saved = documents.save_upload(tmp_path, "notes.md", NOTE)
    assert (saved.path, saved.renamed) == ("notes-2.md", True)
    again = documents.save_upload(tmp_path, "notes.md", NOTE)  # the same file once more
    assert (again.path, again.existed) == ("notes-2.md", True)
    third = documents.save_upload(tmp_path, "notes.md", b"Another note about sleep.\n")
    assert third.path == "notes-3.md"
    assert files(tmp_path) == {
        "notes.md": b"# Mine\n\nKeep me.\n",
        "notes-2.md": NOTE,
        "notes-3.md": b"Another note about sleep.\n",
    }


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("big.txt", b"x" * 2048, "over the 0.0 MB limit"),
        ("scan.doc", b"\xd0\xcf\x11\xe0", "cannot be read"),
        ("scan.docx", b"PK\x03\x04", "cannot read scan.docx: damaged or truncated file"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "cannot read image.txt: binary file"),
        ("broken.pdf", b"%PDF-1.7 truncated", "cannot read broken.pdf"),
        ("blank.md", b"\n\n   \n", "has no text to index"),
    ],
)
def test_refused_uploads_write_nothing(tmp_path, name, data, message):
    (tmp_path / "keep.txt").write_text("Existing document.", encoding="utf-8")
    before = files(tmp_path)
    with pytest.raises(QAError) as info:
        documents.save_upload(tmp_path, name, data, max_bytes=1024)
    assert message in info.value.message and info.value.hint
    assert files(tmp_path) == before


def test_the_size_limit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_UPLOAD_MAX_MB", "0.001")
    with pytest.raises(QAError, match="over the"):
        documents.save_upload(tmp_path, "a.txt", b"word " * 400)
    monkeypatch.setenv("QA_UPLOAD_MAX_MB", "nonsense")  # falls back to the default
    assert documents.save_upload(tmp_path, "a.txt", b"word " * 400).path == "a.txt"


def test_a_file_builds_would_skip_is_refused_at_upload(tmp_path, monkeypatch):
    """With QA_MAX_FILE_MB=1 a 2 MB upload (under the page's 20 MB) was saved, then skipped by
    every build while the page said to rebuild."""
    monkeypatch.setenv("QA_MAX_FILE_MB", "1")
    with pytest.raises(QAError) as info:
        documents.save_upload(tmp_path, "big.txt", b"word " * 400_000)
    assert info.value.message == ("big.txt is 1.9 MB, over the 1.0 MB limit of a file the index "
                                  "reads")  # fmt: skip
    assert info.value.hint == "split it into smaller files, or raise QA_MAX_FILE_MB"
    assert files(tmp_path) == {}
    monkeypatch.setenv("QA_MAX_FILE_MB", "0")  # no limit for builds: the page's holds
    with pytest.raises(QAError, match="limit for adding a file") as info:
        documents.save_upload(tmp_path, "big.txt", b"word " * 400_000, max_bytes=1_000_000)
    assert "QA_UPLOAD_MAX_MB" in info.value.hint


@pytest.mark.parametrize("name", ["empty.txt", "blank.md", "bare.html"])
def test_an_empty_file_gets_a_hint_that_fits_it(tmp_path, name):
    """An empty .txt was told that a scanned PDF holds images of text only."""
    with pytest.raises(QAError, match="has no text to index") as info:
        documents.save_upload(tmp_path, name, b"  \n\n")
    assert info.value.hint == "add a file with some text in it"


def test_a_latin1_upload_is_accepted(tmp_path):
    saved = documents.save_upload(tmp_path, "old.txt", "Crème brûlée, naïve.".encode("cp1252"))
    assert saved.path == "old.txt"


def test_save_into_a_read_only_folder_is_an_error_not_a_crash(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # running as root: permissions do not apply
            folder = tmp_path / "missing-parent-is-a-file" / "corpus"
            (tmp_path / "missing-parent-is-a-file").write_text("x", encoding="utf-8")
        with pytest.raises(QAError, match="cannot save notes.md"):
            documents.save_upload(folder, "notes.md", NOTE)
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_a_document_file_is_inside_the_corpus_only(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "a.txt").write_text("A.", encoding="utf-8")
    assert documents.document_file(corpus, "sub/a.txt") == (corpus / "sub" / "a.txt").resolve()
    for bad in ("../outside.txt", "/etc/passwd", ".", ""):
        with pytest.raises(QAError):
            documents.document_file(corpus, bad)


def test_a_linked_document_is_the_link_not_its_target(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("Not in the corpus.", encoding="utf-8")
    (corpus / "link.txt").symlink_to(target)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "b.txt").write_text("B.", encoding="utf-8")
    (corpus / "linked-folder").symlink_to(tmp_path / "outside")
    assert documents.document_file(corpus, "link.txt").is_symlink()  # unlinking it keeps target
    with pytest.raises(QAError):  # a folder link leading outside the corpus
        documents.document_file(corpus, "linked-folder/b.txt")


def test_a_temporary_file_left_by_a_killed_server_is_cleaned_up(tmp_path):
    import time

    stale, fresh = tmp_path / ".dead.upload", tmp_path / ".alive.upload"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"in progress")
    old = time.time() - documents.STALE_UPLOAD_S - 60
    os.utime(stale, (old, old))
    documents.save_upload(tmp_path, "notes.md", NOTE)
    assert not stale.exists() and fresh.exists()


def test_access(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    store = LocalStore(tmp_path / "index")
    monkeypatch.delenv("QA_PAGE_UPLOADS", raising=False)
    assert documents.access(store, corpus) == documents.Access(True, True, "", corpus)
    for off in ("0", "false", "No", "off"):
        monkeypatch.setenv("QA_PAGE_UPLOADS", off)
        allowed = documents.access(store, corpus)
        assert (allowed.rebuild, allowed.manage) == (True, False)
        assert "QA_PAGE_UPLOADS=0" in allowed.reason
    monkeypatch.setenv("QA_PAGE_UPLOADS", "1")

    class SharedStore:  # any store but a local index folder: e.g. PostgreSQL
        location = "postgresql://db/qa"

    shared = documents.access(SharedStore(), corpus)
    assert (shared.rebuild, shared.manage) == (False, False) and "shared" in shared.reason


def test_rows_and_passage_counts():
    manifest = {"documents": [
        {"path": "a.txt", "title": "A", "chunks": 3, "mtime_ns": 1_746_090_000 * 10**9},
        {"path": "b.md", "title": "", "chunks": 1},
    ]}  # fmt: skip
    assert documents.rows(manifest) == [
        documents.Row("a.txt", "A", 3, "2025-05-01"),
        documents.Row("b.md", "b.md", 1, ""),
    ]
    assert documents.passages_of(manifest, "a.txt") == 3
    assert documents.passages_of(manifest, "c.txt") is None
