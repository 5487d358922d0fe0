import pytest
from conftest import passage_matches, report_questions

from qa.errors import QAError, UsageError
from qa.retrieve.results import Hit
from qa.retrieve.searcher import Searcher


def test_causes_question_returns_whole_passages_from_causes(report_searcher, report_corpus):
    hits = report_searcher.search("What causes chronic mid back pain?", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0].score >= hits[1].score >= hits[2].score
    text = (report_corpus / hits[0].doc).read_text(encoding="utf-8")
    causes = [h for h in hits if h.section == "Chronic Middle Back Pain Causes"]
    assert causes, "a passage of the causes section must be in the top 3"
    for h in hits:
        assert text[h.start : h.end] == h.text
        assert len(h.text.split()) > 10  # a passage, not a bare heading
        assert h.title == "Chronic middle back pain"


def test_reader_questions_in_top3(report_searcher):
    """The first ten reader questions each find their paragraph in the top 3."""
    questions = [q for q in report_questions() if q["expected"]][:10]
    assert len(questions) >= 8
    misses = []
    for q in questions:
        hits = report_searcher.search(q["question"], k=3)
        if not any(passage_matches(h.text, q["expected"]) for h in hits):
            misses.append(q["question"])
    assert misses == []


def test_k_and_empty_question(report_searcher):
    assert len(report_searcher.search("massage", k=1)) == 1
    assert len(report_searcher.search("massage", k=50)) == 12  # never more than the chunks
    for bad in ["", "   ", "\x00\x07"]:
        with pytest.raises(UsageError):
            report_searcher.search(bad)
    with pytest.raises(UsageError):
        report_searcher.search("massage", k=0)


def test_missing_index(tmp_path):
    with pytest.raises(QAError) as info:
        Searcher(tmp_path / "none")
    assert "no index at" in info.value.message and "qa build" in info.value.hint


def test_index_built_with_another_model_is_refused(report_index, tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(QAError) as info:
        Searcher(report_index, model=str(tmp_path / "model"))
    assert "built with model" in info.value.message


def test_a_passage_found_in_copies_of_a_document_is_shown_once(tmp_path, report_corpus, embedder):
    """Found by trying: with "report.txt" and its copy "report (1).txt" in the corpus, the best
    passage came twice, first and second, and pushed a passage out of the k shown. `qa eval`
    still ranks every copy (each is its own document there)."""
    import shutil

    from qa.build import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    report = next(report_corpus.iterdir())
    shutil.copy(report, corpus / "report.txt")
    shutil.copy(report, corpus / "report (1).txt")
    build_index(corpus, tmp_path / "index", embedder=embedder)
    searcher = Searcher(tmp_path / "index", embedder=embedder)
    question = "Is the thoracic spine prone to injury?"
    for mode in ("hybrid", "dense", "lexical"):
        hits = searcher.ask(question, k=5, mode=mode).hits
        texts = [" ".join(h.text.split()) for h in hits]
        assert len(hits) == 5 and len(set(texts)) == 5, (mode, texts)
    ranked = searcher.rank(question, 2, "hybrid").passages.chunks
    assert ranked[0].text == ranked[1].text and ranked[0].doc != ranked[1].doc
    assert len(searcher.ask(question, k=24).hits) == 12  # every distinct passage once
