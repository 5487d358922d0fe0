"""Symbolic links in the corpus: one that leads outside the corpus folder never publishes its
file (skipped and named, unless --follow-symlinks / QA_FOLLOW_SYMLINKS asks for it), a linked
folder is named, not dropped silently, and a loop is called a loop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPORT, ROOT
from streamlit.testing.v1 import AppTest

from qa import staleness
from qa.cli import main
from qa.ingest.loaders import BROKEN_LINK, LINK_LOOP, LINK_OUTSIDE, LINKED_FOLDER
from qa.present import documents
from qa.store.local import LocalStore

SECRET = "Sekrit root password hint: the blue door opens at midnight.\n"
SKIPPED = {
    "passwd.txt": LINK_OUTSIDE,  # -> ../outside/secret.txt
    "linked/": LINK_OUTSIDE,  # -> ../outside
    "subdir/": LINKED_FOLDER,  # -> sub
    "loop.md": LINK_LOOP,  # -> itself
    "a.md": LINK_LOOP,  # -> b.md -> a.md
    "b.md": LINK_LOOP,
    "sub/up/": LINK_LOOP,  # -> .. (a folder it lies in)
    "gone.txt": BROKEN_LINK,
}


@pytest.fixture
def corpus(tmp_path, monkeypatch, embedder) -> Path:
    """A corpus with every kind of link; builds use the session's model."""
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    monkeypatch.delenv("QA_FOLLOW_SYMLINKS", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "sub" / "knees.txt").write_text("Knees\n\nCycling is kind to the knees.\n", "utf-8")
    links = {"passwd.txt": "../outside/secret.txt", "linked": "../outside", "subdir": "sub",
             "inner.txt": "report.txt", "loop.md": "loop.md", "a.md": "b.md", "b.md": "a.md",
             "sub/up": "..", "gone.txt": "nowhere.txt"}  # fmt: skip
    for name, target in links.items():
        (corpus / name).symlink_to(target)
    return corpus


def build(capsys, corpus: Path, index: Path, *options: str) -> str:
    assert main(["build", "--corpus", str(corpus), "--index", str(index), "-q", *options]) == 0
    return capsys.readouterr().err


def manifest(index: Path) -> dict:
    return LocalStore(index).manifest()


def test_links_outside_the_corpus_are_skipped_named_and_never_served(capsys, tmp_path, corpus):
    index = tmp_path / "index"
    warnings = build(capsys, corpus, index)
    for path, reason in SKIPPED.items():
        assert f"qa: warning: skipped {path}: {reason}\n" in warnings
    m = manifest(index)
    assert [d["path"] for d in m["documents"]] == ["inner.txt", "report.txt", "sub/knees.txt"]
    assert {s["path"]: s["reason"] for s in m["skipped"]} == SKIPPED
    assert main(["ask", "What opens the blue door at midnight?", "--index", str(index),
                 "--json", "-k", "20"]) == 0  # fmt: skip
    assert "Sekrit" not in capsys.readouterr().out
    assert main(["info", "--index", str(index)]) == 0
    assert f"skipped:    passwd.txt: {LINK_OUTSIDE}\n" in capsys.readouterr().out
    assert staleness.check(index, corpus).stale is False  # skipped links never count as added


def test_follow_symlinks_reads_links_outside_and_linked_folders_never_loops(
    capsys, tmp_path, corpus, monkeypatch
):
    build(capsys, corpus, tmp_path / "flag", "--follow-symlinks")
    monkeypatch.setenv("QA_FOLLOW_SYMLINKS", "1")
    build(capsys, corpus, tmp_path / "env")
    for index in (tmp_path / "flag", tmp_path / "env"):
        m = manifest(index)
        assert [d["path"] for d in m["documents"]] == [
            "inner.txt", "linked/secret.txt", "passwd.txt", "report.txt", "sub/knees.txt",
            "subdir/knees.txt"]  # fmt: skip
        assert {s["path"]: s["reason"] for s in m["skipped"]} == {
            "loop.md": LINK_LOOP, "a.md": LINK_LOOP, "b.md": LINK_LOOP, "sub/up/": LINK_LOOP,
            "subdir/up/": LINK_LOOP, "gone.txt": BROKEN_LINK}  # fmt: skip
        assert staleness.check(index, corpus).stale is False  # compared as QA_FOLLOW_SYMLINKS


def test_the_page_names_skipped_links_and_never_shows_their_text(capsys, tmp_path, corpus,
                                                                monkeypatch):  # fmt: skip
    from test_app import ask, page_text, passages

    build(capsys, corpus, tmp_path / "index")
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert at.sidebar.expander[0].label == "Documents (3)"
    index = page_text(at.sidebar.markdown[-1].value)
    assert (f"**Skipped** 8 files: a.md ({LINK_LOOP}); b.md ({LINK_LOOP}); "
            f"gone.txt ({BROKEN_LINK}) and 5 more") in index
    ask(at, "What opens the blue door at midnight?")
    assert not any("Sekrit" in p for p in passages(at))
    at.query_params.update({"doc": "passwd.txt", "start": "0", "end": "9"})  # never indexed
    assert "Sekrit" not in json.dumps([e.value for e in at.run().markdown])


def test_an_upload_is_never_compared_with_the_file_a_link_leads_to(corpus):
    """Uploading passwd.txt with the bytes of the file the link leads to must not say "already
    in the documents": that would tell a reader what a file outside the corpus holds."""
    saved = documents.save_upload(corpus, "passwd.txt", SECRET.encode())
    assert (saved.path, saved.existed) == ("passwd-2.txt", False)
    assert (corpus / "passwd.txt").is_symlink()
