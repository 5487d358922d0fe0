from pathlib import Path

import pytest

from qa.errors import QAError
from qa.ingest.loaders import decode, load_corpus, title_from_filename


def test_report_loads_exactly_as_given(report_corpus):
    loaded = load_corpus(report_corpus)
    [doc] = loaded.documents
    raw = (report_corpus / "chronic-middle-back-pain.txt").read_bytes()
    assert doc.text == raw.decode("utf-8")  # no-break spaces and all: offsets map back
    assert "\xa0" in doc.text
    assert doc.path == "chronic-middle-back-pain.txt"
    assert doc.title == "Chronic middle back pain"
    assert loaded.skipped == []


def test_recursive_stable_order_and_skips(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "z.txt").write_text("zed", encoding="utf-8")
    (tmp_path / "b" / "two.md").write_text("# Two\n\nbody", encoding="utf-8")
    (tmp_path / "a" / "one.txt").write_text("one", encoding="utf-8")
    (tmp_path / "a" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    first = load_corpus(tmp_path)
    assert [d.path for d in first.documents] == ["a/one.txt", "b/two.md", "z.txt"]
    assert [d.kind for d in first.documents] == ["text", "markdown", "text"]
    assert first.documents[1].title == "Two"
    assert [p for p, _ in first.skipped] == ["a/image.png"]
    assert [d.path for d in load_corpus(tmp_path).documents] == [d.path for d in first.documents]


def test_encodings(tmp_path: Path):
    text = "Café — naïve résumé, 東京, emoji 🙂"
    (tmp_path / "bom.txt").write_bytes("\ufeff".encode() + text.encode("utf-8"))
    (tmp_path / "utf16.txt").write_bytes(text.encode("utf-16"))
    (tmp_path / "latin1.txt").write_bytes(text.encode("utf-8")[:0] + "caf\xe9".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02")
    loaded = load_corpus(tmp_path)
    docs = {d.path: d.text for d in loaded.documents}
    assert docs == {"bom.txt": text, "utf16.txt": text}
    reasons = dict(loaded.skipped)
    assert "UTF-8" in reasons["latin1.txt"]
    assert reasons["binary.txt"] == "binary file"


def test_decode_rejects_invalid_utf8():
    with pytest.raises(ValueError):
        decode(b"\xff\xfe\xfa"[1:])


def test_missing_corpus_is_a_user_error(tmp_path: Path):
    with pytest.raises(QAError) as info:
        load_corpus(tmp_path / "nope")
    assert "no corpus folder" in info.value.message and info.value.hint


def test_title_from_filename():
    assert title_from_filename("notes/back_pain-advice.md") == "Back pain advice"
