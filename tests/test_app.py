"""The Streamlit page, run headless with streamlit.testing.v1.AppTest (no browser)."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import REPORT, ROOT
from streamlit.testing.v1 import AppTest

from qa.build import build_index
from qa.present import page

APP = str(ROOT / "app.py")
TIMEOUT = 120  # a first run may load the model or build an index on a busy machine


@pytest.fixture
def app(monkeypatch, report_index, report_corpus, embedder):
    """The page over the session's index of the report, after its first run."""
    monkeypatch.setenv("QA_INDEX", str(report_index))
    monkeypatch.setenv("QA_CORPUS", str(report_corpus))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.text_input(key="question").input(question)
    return at.run()


def cards(at: AppTest) -> list:
    """The result cards of an answer (those with a "Show in context" expander)."""
    return [c for c in at.main.children.values() if c.type == "flex_container" and c.expander]


def passages(at: AppTest) -> list[str]:
    """The passage of every result card, as plain text."""
    return [page_text(card.markdown[1].value) for card in cards(at)]


def heading(at: AppTest) -> str:
    """The line above the results, e.g. '3 passages for: *question*'."""
    return next(m.value for m in at.main.markdown if " for: *" in m.value)


def page_text(markdown: str) -> str:
    """What a reader sees of page Markdown: marks and escapes dropped (as the browser shows it)."""
    text = re.sub(r"(?<!\\)\]", "", markdown.replace(page.MARK_OPEN, ""))
    return " ".join(re.sub(r"\\(.)", r"\1", text).replace(page.WORD_JOINER, "").split())


def all_markdown(at: AppTest) -> list:
    return list(at.markdown) + list(at.caption)


def test_first_view_explains_what_to_do(app):
    assert app.title[0].value == "Ask the documents"
    assert app.markdown[0].value == "Searching 1 document: *Chronic middle back pain*."
    assert app.caption[0].value == page.DISCLAIMER
    assert [b.label for b in app.button] == [page.escape_markdown(q) for q in page.REPORT_EXAMPLES]
    assert app.info[0].value == page.EMPTY_HINT
    assert "**Built**" in app.sidebar.markdown[0].value
    assert not app.error


def test_a_question_shows_cards_with_the_answering_passage(app):
    ask(app, "Could my back pain be psychosomatic?")
    assert not app.exception and not app.error
    found = passages(app)
    assert len(found) == 3  # the default passage count
    assert found[0].startswith("Instances of longstanding unresolved back pain")
    card = cards(app)[0]
    assert card.markdown[0].value.startswith(
        "**1** · **Chronic middle back pain\\, Chronic Middle Back Pain Causes**"
    )
    assert card.get("progress")[0].proto.text.startswith("Relevance: strong match")
    context = page_text(card.expander[0].markdown[0].value)
    assert "Chronic Middle Back Pain Causes Severe recurrent pain" in context  # the heading above
    assert page.MARK_OPEN + "Instances of longstanding" in card.expander[0].markdown[0].value


@pytest.mark.parametrize("question", ["", "   ", "\t\n"])
def test_an_empty_question_shows_a_hint_not_an_error(app, question):
    ask(app, question)
    assert not app.exception and not app.error
    assert app.info[0].value == page.EMPTY_HINT
    assert passages(app) == []


def test_the_passage_count_control(app):
    ask(app, "chiropractor")
    assert len(passages(app)) == 3
    app.number_input(key="k").set_value(1).run()
    assert len(passages(app)) == 1
    app.number_input(key="k").set_value(6).run()
    assert len(passages(app)) == 6
    assert heading(app) == "6 passages for: *chiropractor*"


def test_an_example_question_fills_the_box_and_answers(app):
    app.button(key="example-2").click().run()
    assert app.text_input(key="question").value == page.REPORT_EXAMPLES[2]
    assert passages(app)[0].startswith("Additionally, symptomatic care is a form of dependency")


def test_html_in_a_question_is_escaped_and_no_html_is_ever_allowed(app):
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    ask(app, hostile)
    assert not app.exception
    shown = heading(app)
    assert "<" not in shown.replace("\\<", "")
    assert page_text(shown).endswith(page_text(hostile) + "*")
    assert all(not m.proto.allow_html for m in all_markdown(app))
    assert not app.get("html")


def test_html_in_a_document_is_shown_as_text(monkeypatch, tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "evil.txt").write_text(
        "Evil <b>title</b>\n\nBack pain <script>alert(1)</script> and "
        '<img src=x onerror="alert(2)"> treatments :red[red] $x$.\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    ask(at, "back pain treatments")
    assert not at.exception
    card = cards(at)[0]
    shown = [card.markdown[0].value, card.markdown[1].value, card.expander[0].markdown[0].value]
    for md in shown:
        assert (
            re.search(
                r"(?<!\\)[<>\[\]$]", md.replace(page.MARK_OPEN, "").replace(page.MARK_CLOSE, "")
            )
            is None
        ), md
    assert "<script>alert(1)</script>" in page_text(card.markdown[1].value)
    assert all(not m.proto.allow_html for m in all_markdown(at))


def test_a_fresh_clone_builds_the_index_with_progress_then_answers(monkeypatch, tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    index = tmp_path / "index"
    monkeypatch.setenv("QA_INDEX", str(index))
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    status = at.get("status")[0]
    assert status.state == "complete"
    assert status.label.startswith("Indexed 1 documents")
    assert status.get("progress")[0].value == 100
    assert (index / "current").exists()
    ask(at, "Is the thoracic spine often injured?")
    assert passages(at)[0].startswith("The thoracic spine is not prone to injury")
    assert not at.get("status")  # the build ran once; later questions do not rebuild


def test_an_empty_corpus_is_explained_not_a_traceback(monkeypatch, tmp_path, embedder):
    corpus = tmp_path / "my <b>corpus"
    corpus.mkdir()
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.error[0].value.startswith("no documents to index in")
    assert "my \\<b\\>corpus" in at.error[0].value  # a path is shown as text, too
    assert not at.text_input


def test_a_damaged_index_offers_a_rebuild(monkeypatch, tmp_path, report_corpus, embedder):
    from qa.build import build_index

    index = tmp_path / "index"
    summary = build_index(report_corpus, index, embedder=embedder)
    (index / "builds" / summary.generation / "chunks.jsonl").write_text("damaged", encoding="utf-8")
    monkeypatch.setenv("QA_INDEX", str(index))
    monkeypatch.setenv("QA_CORPUS", str(report_corpus))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "damaged" in at.error[0].value
    at.button[0].click().run()
    assert not at.exception and not at.error
    ask(at, "Is the thoracic spine often injured?")
    assert passages(at)[0].startswith("The thoracic spine is not prone to injury")


def test_build_reports_embedding_progress_for_the_page(tmp_path, report_corpus, embedder):
    from qa.build import build_index

    calls: list[tuple[int, int]] = []
    summary = build_index(
        report_corpus, tmp_path, embedder=embedder, on_progress=lambda *a: calls.append(a)
    )
    assert calls[0] == (0, summary.chunks) and calls[-1] == (summary.chunks, summary.chunks)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    calls.clear()
    build_index(report_corpus, tmp_path, embedder=embedder, on_progress=lambda *a: calls.append(a))
    assert calls == [(0, 0)]  # nothing changed: nothing to embed, and the bar still completes


def test_model_and_index_load_once_per_process(monkeypatch, tmp_path, report_corpus, embedder):
    from qa.build import build_index
    from qa.embed import models
    from qa.retrieve import searcher as search

    build_index(report_corpus, tmp_path / "index", embedder=embedder)
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    made = []
    original = search.Searcher.__init__

    def counting_init(self, *args, **kwargs):
        made.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(search.Searcher, "__init__", counting_init)
    loads = models.LOADS["count"]
    for _ in range(2):  # two browser sessions
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        for question in ("chiropractor", "Is the thoracic spine often injured?"):
            ask(at, question)
            assert passages(at)
    assert len(made) == 1
    assert models.LOADS["count"] == loads


def app_on_own_report_index(monkeypatch, tmp_path, embedder) -> tuple:
    """A page over a private copy of the report and its index (tests that change them)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, tmp_path / "index", embedder=embedder)
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    return corpus, AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def test_a_rebuild_elsewhere_goes_live_on_the_next_question(monkeypatch, tmp_path, embedder):
    corpus, at = app_on_own_report_index(monkeypatch, tmp_path, embedder)
    assert at.markdown[0].value.startswith("Searching 1 document")
    (corpus / "sleep.txt").write_text(
        "Sleep and back pain\n\nA firm mattress and sleeping on your side can ease back pain at "
        "night.\n",
        encoding="utf-8",
    )
    build_index(corpus, tmp_path / "index", embedder=embedder)  # e.g. `qa build` in a terminal
    ask(at, "Which mattress helps back pain at night?")
    assert passages(at)[0].startswith("A firm mattress and sleeping on your side")
    assert at.markdown[0].value.startswith("Searching 2 documents")


def test_a_pasted_article_is_answered_with_a_note(app):
    article = REPORT.read_text(encoding="utf-8") * 50  # over 200,000 characters
    ask(app, article)
    assert not app.exception and not app.error
    assert len(passages(app)) == 3
    assert any("only its beginning was used" in c.value for c in app.caption)


def test_a_stale_index_is_flagged_and_rebuilt_from_the_page(monkeypatch, tmp_path, embedder):
    corpus, at = app_on_own_report_index(monkeypatch, tmp_path, embedder)
    assert not at.warning
    (corpus / "new <i>notes.txt").write_text(
        "Desk notes\n\nA standing desk lets you change posture during the working day.\n",
        encoding="utf-8",
    )
    ask(at, "chiropractor")
    warning = page_text(at.warning[0].value)
    assert warning.startswith("The index is out of date: 1 added (new <i>notes.txt)")
    assert len(passages(at)) == 3  # a stale index still answers
    at.button(key="rebuild").click().run()
    assert not at.exception and not at.error and not at.warning
    ask(at, "Can I change posture at work?")
    assert passages(at)[0].startswith("A standing desk lets you change posture")


def test_highlights_are_marked_in_the_passage(app, report_searcher):
    question = "Should I get a second opinion?"
    ask(app, question)
    expected = report_searcher.ask(question, 3)
    assert expected.answered and expected.hits[0].highlights
    card = cards(app)[0]
    assert card.markdown[1].value == page.marked_md(
        expected.hits[0].text, expected.hits[0].highlights
    )
    assert page.MARK_OPEN in card.markdown[1].value


def test_a_question_the_documents_do_not_cover(app):
    ask(app, "What is the capital of France?")
    assert not app.exception and not app.error
    assert app.warning[0].value == page.NOT_COVERED
    closest = app.main.expander[0]
    assert closest.label == "The closest passages (3)"
    assert not closest.proto.expanded  # collapsed: there, but not presented as an answer
    assert len([c for c in closest.children.values() if c.type == "flex_container"]) == 3
    assert not any(e.label == "Show in context" for e in app.main.expander)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_the_mode_choice(app, report_searcher, mode):
    assert app.sidebar.radio(key="mode").value == "hybrid"  # the default
    app.sidebar.radio(key="mode").set_value(mode).run()
    ask(app, "psychosomatic pain")
    expected = report_searcher.ask("psychosomatic pain", 3, mode=mode)
    assert expected.answered and expected.hits
    assert passages(app) == [page_text(page.marked_md(h.text, h.highlights)) for h in expected.hits]
    bar = cards(app)[0].get("progress")[0].proto.text
    best = expected.hits[0].score
    assert bar == page.relevance(best, mode, best).text
    assert ("keyword score" in bar) == (mode == "lexical")


def test_no_matching_passage_is_said_plainly(app):
    app.sidebar.radio(key="mode").set_value("lexical").run()
    ask(app, "chiropractor")  # no passage has the word (the report says "chiropractic")
    assert not app.exception and not app.error
    assert page.NO_PASSAGES in [i.value for i in app.info]
    assert passages(app) == []
