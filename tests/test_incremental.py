"""Incremental builds: unchanged texts are never embedded twice; the reuse cache stays bounded.

The "cache" is the live build: passage vectors, and the sentence vectors pooled from each
passage's forward pass, are keyed by (vector space, exact embedded text), so it holds exactly the
current passages and deleting the index is always safe. Every text the model runs on is counted
with a spy on `Embedder.encode` and `Embedder.encode_spans`.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import reseal

from qa.build import build_index, text_key
from qa.ingest import sentences
from qa.ingest.chunking import embed_text
from qa.retrieve import answered
from qa.store import folder as store
from qa.store import local_generation
from qa.store.local import LocalStore

TOPICS = ["back pain", "sleep", "posture", "exercise", "diet", "stress", "massage", "yoga"]


def write_corpus(folder, n: int = 24) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"doc{i:02d}.md").write_text(
            f"# Note {i} on {topic}\n\n## Causes\n\n"
            f"Note {i} explains how {topic} relates to the spine and muscles of the back.\n\n"
            f"## Advice\n\nFor {topic}, note {i} suggests rest, movement and seeing a doctor.\n",
            encoding="utf-8",
        )


@pytest.fixture
def spy(embedder, monkeypatch):
    """Records every list of texts the session embedder runs the model on."""
    calls: list[list[str]] = []
    real, real_spans = embedder.encode, embedder.encode_spans

    def encode(texts, progress=False):
        calls.append(list(texts))
        return real(texts, progress=progress)

    def encode_spans(texts, spans, progress=False):
        calls.append(list(texts))
        return real_spans(texts, spans, progress=progress)

    monkeypatch.setattr(embedder, "encode", encode)
    monkeypatch.setattr(embedder, "encode_spans", encode_spans)
    return calls


def encoded(calls) -> list[str]:
    """The passages embedded (not the fixed probe questions a build may ask once per process,
    see qa.retrieve.answered.null_record)."""
    probes = set(answered.probes())
    return [t for call in calls for t in call if t not in probes]


def live_texts(index_dir, path: str | None = None) -> list[str]:
    s = LocalStore(index_dir).open()
    titles = {d["path"]: d["title"] for d in s.manifest["documents"]}
    return [embed_text(c.section, titles[c.doc], c.text) for c in s.chunks
            if path is None or c.doc == path]


def live_sentences(index_dir) -> list[str]:
    s = LocalStore(index_dir).open()
    return sentences.sentence_texts(s.chunks, s.arrays[sentences.TABLE])


def test_unchanged_rebuild_embeds_nothing(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c")
    first = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert first.embedded == first.chunks == 48
    # each passage once, and no sentence on its own: their vectors come from the passage's pass
    assert sorted(encoded(spy)) == sorted(live_texts(tmp_path / "i"))
    assert len(live_sentences(tmp_path / "i")) == 48  # one sentence per passage here
    before = LocalStore(tmp_path / "i").open()
    spy.clear()
    again = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert encoded(spy) == [] and again.embedded == 0 and again.chunks == 48
    after = LocalStore(tmp_path / "i").open()
    assert after.path != before.path  # a new build went live...
    assert np.array_equal(after.vectors, before.vectors)  # ...with the very same vectors
    assert np.array_equal(after.arrays[sentences.VECTORS], before.arrays[sentences.VECTORS])
    assert after.manifest["keys"] == before.manifest["keys"]


def test_changing_one_document_embeds_only_its_changed_chunks(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c")
    build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    doc = tmp_path / "c" / "doc05.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("rest, movement", "gentle stretching"),
                   encoding="utf-8")
    spy.clear()
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    changed = [t for t in live_texts(tmp_path / "i", "doc05.md") if "stretching" in t]
    assert len(changed) == 1  # the changed passage
    assert summary.embedded == 1 and encoded(spy) == changed
    # the reused vectors are the ones a fresh embedding would give, sentences included
    stored = LocalStore(tmp_path / "i").open()
    texts = live_texts(tmp_path / "i")
    fresh, fresh_sentences = embedder.encode_spans(
        texts, [sentences.model_spans(c, t) for c, t in zip(stored.chunks, texts, strict=True)])
    assert np.allclose(stored.vectors, fresh, atol=1e-5)
    assert np.allclose(stored.arrays[sentences.VECTORS], fresh_sentences, atol=1e-5)


def test_new_and_deleted_documents(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c", 10)
    build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    (tmp_path / "c" / "doc03.md").unlink()
    shutil.copy(tmp_path / "c" / "doc04.md", tmp_path / "c" / "copy-of-doc04.md")
    spy.clear()
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert summary.chunks == 20 and summary.embedded == 0  # a copy has the same passages
    # the cache never outgrows the index: the deleted document's keys are gone
    manifest = LocalStore(tmp_path / "i").open().manifest
    keys = manifest["keys"]
    assert len(keys) == manifest["chunks"] == 20
    assert keys == [text_key(embedder.vector_id, t) for t in live_texts(tmp_path / "i")]
    assert not any("Note 3 " in t for t in live_texts(tmp_path / "i"))
    assert len(list((tmp_path / "i" / "builds").iterdir())) == 1  # old builds are removed


def test_pooling_sentence_spans_in_their_passage(embedder):
    from qa.embed.pooling import pool_spans
    from qa.ingest.chunking import Chunk

    hidden = np.arange(12, dtype=np.float32).reshape(4, 3)
    offsets = np.array([[0, 0], [0, 4], [5, 9], [0, 0]])  # [CLS] back pain [SEP]
    pooled = pool_spans(hidden, offsets, [(0, 4), (0, 9), (3, 6), (20, 30)])
    assert np.allclose(pooled, [hidden[1], hidden[1:3].mean(0), hidden[1:3].mean(0), [0, 0, 0]])
    text = "  Rest  helps.\nSo does\tmovement!  Ask a doctor "
    chunk = Chunk(id=0, doc="d.md", section="Advice\n", start=0, end=len(text), text=text)
    embedded = embed_text(chunk.section, "Title", chunk.text)
    spans = sentences.model_spans(chunk, embedded)
    assert [embedded[s:e] for s, e in spans] == ["Rest helps.", "So does movement!", "Ask a doctor"]
    vectors, pooled = embedder.encode_spans([embedded], [spans])
    assert pooled.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1, atol=1e-5)


def test_a_build_with_separately_embedded_sentences_is_upgraded_once(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c", 4)
    build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    manifest_file = store.current_build(tmp_path / "i") / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    del manifest["sentence_vectors"]  # as written before sentence vectors were pooled
    reseal(manifest_file.parent, manifest)
    spy.clear()
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert summary.embedded == summary.chunks == 8 and len(encoded(spy)) == 8
    spy.clear()
    assert build_index(tmp_path / "c", tmp_path / "i", embedder=embedder).embedded == 0


def test_deleting_the_index_is_safe(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c", 6)
    build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    vectors = LocalStore(tmp_path / "i").open().vectors
    shutil.rmtree(tmp_path / "i")
    spy.clear()
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert summary.embedded == summary.chunks == 12
    assert len(encoded(spy)) == 12
    assert np.allclose(LocalStore(tmp_path / "i").open().vectors, vectors, atol=1e-5)


def test_a_damaged_live_build_is_not_reused(tmp_path, embedder, spy):
    write_corpus(tmp_path / "c", 4)
    build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    vectors_file = store.current_build(tmp_path / "i") / local_generation.VECTORS
    vectors_file.write_bytes(vectors_file.read_bytes()[:-16] + b"\x00" * 16)
    spy.clear()
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=embedder)
    assert summary.embedded == summary.chunks == 8  # checksum mismatch: everything re-embedded


def test_info_does_not_import_torch(tmp_path, report_index):
    code = ("import sys, json; from qa.cli import main\n"
            f"assert main(['info', '--index', {str(report_index)!r}, '--json']) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'sentence_transformers' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["chunks"] == 12
