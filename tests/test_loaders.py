import shutil
from pathlib import Path

import pytest

from qa.errors import QAError
from qa.ingest.loaders import decode, load_corpus, title_from_filename
from qa.ingest.loaders.plain import decode_text


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
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02")
    loaded = load_corpus(tmp_path)
    docs = {d.path: d.text for d in loaded.documents}
    assert docs == {"bom.txt": text, "utf16.txt": text, "latin1.txt": "café"}
    encodings = {d.path: d.metadata["encoding"] for d in loaded.documents}
    assert encodings == {"bom.txt": "utf-8", "utf16.txt": "utf-16", "latin1.txt": "cp1252"}
    assert dict(loaded.skipped) == {"binary.txt": "binary file"}


WESTERN = [
    ("Café crème brûlée, naïve résumé. “Smart quotes” — and €5.", "cp1252"),  # cp1252 only
    ("Die Straße ist schön und grün. Ärger über Öl.", "cp1252"),
    ("Die Straße ist schön und grün. Ärger über Öl.", "latin-1"),
    ("El niño comió piña en la montaña; ¿qué más?", "cp1252"),
    ("El niño comió piña en la montaña; ¿qué más?", "latin-1"),
    ("caf\xe9", "latin-1"),
]


@pytest.mark.parametrize(("text", "encoding"), WESTERN)
def test_latin1_and_cp1252_text_is_read_not_dropped(tmp_path: Path, text, encoding):
    data = text.encode(encoding)
    assert decode_text(data) == (text, "cp1252")
    (tmp_path / "notes.txt").write_bytes(b"Notes\n\n" + data + b"\n")
    (tmp_path / "notes.md").write_bytes(b"# Notes\n\n" + data + b"\n")
    loaded = load_corpus(tmp_path)
    assert loaded.skipped == []
    for doc in loaded.documents:
        assert text in doc.text and doc.metadata["encoding"] == "cp1252"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("Привет мир, как дела? Это текст на русском языке.", "cp1251"),
     ("Zażółć gęślą jaźń. Polski tekst jest tutaj, w środku.", "cp1250")],
)
def test_other_8bit_encodings_are_detected(text, encoding):
    assert decode_text(text.encode(encoding)) == (text, encoding)


def test_bytes_no_encoding_reads_are_skipped_with_a_reason(tmp_path: Path):
    import random

    rng = random.Random(7)
    noise = bytes(rng.randrange(1, 256) for _ in range(600))
    (tmp_path / "noise.txt").write_bytes(noise)
    loaded = load_corpus(tmp_path)
    assert loaded.documents == []
    assert "no other text encoding fits" in dict(loaded.skipped)["noise.txt"]


def test_the_encoding_is_recorded_in_the_manifest_and_shown(tmp_path: Path, embedder, capsys):
    from qa.build import build_index
    from qa.cli import main
    from qa.store import open_store

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "old.txt").write_bytes("Crème brûlée is a dessert. It is sweet.".encode("cp1252"))
    (corpus / "new.txt").write_text("Plain UTF-8 text about tea.", encoding="utf-8")
    build_index(corpus, tmp_path / "index", embedder=embedder)
    documents = {d["path"]: d for d in open_store(tmp_path / "index").manifest()["documents"]}
    assert documents["old.txt"]["encoding"] == "cp1252"
    assert documents["new.txt"]["encoding"] == "utf-8"
    capsys.readouterr()
    assert main(["info", "--index", str(tmp_path / "index"), "--corpus", str(corpus)]) == 0
    lines = capsys.readouterr().out.splitlines()
    old = [line for line in lines if line.startswith("  old.txt  ")]
    new = [line for line in lines if line.startswith("  new.txt  ")]
    assert len(old) == 1 and ", read as cp1252)" in old[0]
    assert len(new) == 1 and "read as" not in new[0]  # UTF-8: nothing to note


def test_decode_rejects_binary():
    with pytest.raises(ValueError, match="binary"):
        decode(b"%PDF\x00\x01 not text")


def test_missing_corpus_is_a_user_error(tmp_path: Path):
    with pytest.raises(QAError) as info:
        load_corpus(tmp_path / "nope")
    assert "no corpus folder" in info.value.message and info.value.hint


def test_title_from_filename():
    assert title_from_filename("notes/back_pain-advice.md") == "Back pain advice"


def test_an_index_inside_the_corpus_is_not_read_as_documents(report_corpus, embedder, tmp_path):
    """`qa build --corpus . --index index`: the index's own files (its arrays, manifest and
    passages; the repository's index/README.md) are neither documents nor skipped files, and
    the index is not stale because of them."""
    from qa.build import build_index
    from qa.ingest.loaders import is_index_folder
    from qa.staleness import check

    corpus = tmp_path / "corpus"
    shutil.copytree(report_corpus, corpus)
    index = corpus / "index"
    first = build_index(corpus, index, embedder=embedder)
    (index / "README.md").write_text("# The index\n\nBuilt by qa build.", encoding="utf-8")
    again = build_index(corpus, index, embedder=embedder)
    assert is_index_folder(index)
    assert (first.documents, first.skipped) == (again.documents, again.skipped) == (1, [])
    assert again.embedded == 0
    assert [d.path for d in load_corpus(corpus).documents] == ["chronic-middle-back-pain.txt"]
    assert check(index, corpus).stale is False
