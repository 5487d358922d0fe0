"""One Searcher shared by many threads answers exactly as it does serially, and keeps answering
while `qa build` runs in another process, switching to the new index by `refresh()`.

(The page's own AppTest of a rebuild going live is in tests/test_app.py; these tests cover the
library underneath it, with real threads and a real `qa build` process.)
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import time

from conftest import REPORT, report_questions

from qa.build import build_index
from qa.retrieve.searcher import Searcher

THREADS = 8


def two_hundred_questions() -> list[str]:
    """200 different questions: the reader questions, reworded, plus hostile ones."""
    base = [q["question"] for q in report_questions()]
    forms = [
        lambda q: q,
        lambda q: q.lower(),
        lambda q: q.rstrip("?") + " 🙂",
        lambda q: "Please tell me: " + q,
        lambda q: q.upper(),
        lambda q: "\u200f" + q + " 背痛",
    ]
    # (the last: over the model's window, under the question limit)
    hostile = ["chiropractor", "massage", "東京", "\x1b[31m red \x07", "back pain " * 180]
    questions = dict.fromkeys(hostile + [form(q) for form in forms for q in base])
    return list(questions)[:200]


def answer(searcher: Searcher, question: str) -> tuple:
    hits = searcher.search(question, k=3)
    return tuple((h.doc, h.start, h.end, h.score) for h in hits), searcher.truncated


def test_eight_threads_answer_exactly_as_serial(report_searcher):
    questions = two_hundred_questions()
    assert len(set(questions)) == 200
    serial = {q: answer(report_searcher, q) for q in questions}
    assert any(truncated for _, truncated in serial.values())  # the long one was cut

    results: list[dict] = [{} for _ in range(THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        order = questions[:]
        random.Random(n).shuffle(order)  # every thread in its own order
        start.wait()
        try:
            for q in order:
                results[n][q] = answer(report_searcher, q)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for n in range(THREADS):
        assert results[n] == serial, f"thread {n} differs"


def test_searching_goes_on_during_a_build_and_refresh_switches(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    index = tmp_path / "index"
    build_index(corpus, index, embedder=embedder)
    searcher = Searcher(index, embedder=embedder)
    questions = ["Which mattress helps back pain at night?", "chiropractor", "東京 🙂"]
    before = {q: answer(searcher, q) for q in questions}
    old_build = searcher.generation.id

    (corpus / "sleep.txt").write_text(
        "Sleep and back pain\n\nA firm mattress and sleeping on your side can ease back pain "
        "at night.\n",
        encoding="utf-8",
    )
    seen: list[tuple[str, tuple, set]] = []  # (question, answer, builds it may come from)
    errors: list[BaseException] = []
    stop = threading.Event()

    def page_like_session(n: int) -> None:
        """What each page session does per question: refresh, then search."""
        rng = random.Random(n)
        try:
            while not stop.is_set():
                searcher.refresh()
                q = rng.choice(questions)
                before_search = searcher.generation.id
                got = answer(searcher, q)
                seen.append((q, got, {before_search, searcher.generation.id}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=page_like_session, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    build = subprocess.Popen(
        [sys.executable, "-m", "qa", "build", "-q", "--corpus", str(corpus), "--index",
         str(index)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = build.communicate(timeout=300)
        answered_during_build = len(seen)
        time.sleep(0.5)  # let the sessions pick the new build up
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert build.returncode == 0, err
    assert "Indexed 2 documents" in out
    assert errors == []
    assert answered_during_build > 0  # the searcher kept answering while the build ran

    new_build = searcher.generation.id
    builds = tmp_path / "index" / "builds"
    assert new_build != old_build and not (builds / old_build).exists()  # old build removed
    after = {q: answer(searcher, q) for q in questions}
    assert after[questions[0]][0][0][0] == "sleep.txt"  # the new document answers
    expected = {old_build: before, new_build: after}
    for q, got, builds in seen:
        # every answer came whole from one build: the old one's or the new one's
        assert got in [expected[b][q] for b in builds]
    assert any(builds == {new_build} for _, _, builds in seen)  # and the sessions did switch


def test_refresh_from_many_threads_loads_once(tmp_path, embedder, monkeypatch):
    from qa.store.local import LocalStore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, tmp_path / "index", embedder=embedder)
    searcher = Searcher(tmp_path / "index", embedder=embedder)
    assert searcher.refresh() is False  # nothing new
    (corpus / "more.txt").write_text("More text about posture.\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index", embedder=embedder)

    loads = []
    real_open = LocalStore.open
    monkeypatch.setattr(LocalStore, "open", lambda self: loads.append(self) or real_open(self))
    barrier = threading.Barrier(THREADS)
    switched = []

    def refresh() -> None:
        barrier.wait()
        switched.append(searcher.refresh())

    threads = [threading.Thread(target=refresh) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1  # one thread loaded the new build; the others found it in place
    assert switched.count(True) >= 1 and searcher.refresh() is False
    assert [d["path"] for d in searcher.documents()] == [REPORT.name, "more.txt"]


def test_a_replaced_generation_is_freed_though_loaded_ones_are_frozen(tmp_path, embedder):
    """Loaded generations leave the garbage collector's scans (`searcher.settled`), which would
    keep a replaced one for good if it hung in a reference cycle: it must go with its last
    reference, passages and arrays included, and the new one must sit in the frozen set."""
    import gc
    import weakref

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, tmp_path / "index", embedder=embedder)
    searcher = Searcher(tmp_path / "index", embedder=embedder)
    searcher.ask("What causes middle back pain?")  # arrays, BM25 and caches in use
    frozen = gc.get_freeze_count()
    assert frozen > 0
    old = weakref.ref(searcher.generation)
    old_chunk = weakref.ref(searcher.generation.chunks[0])
    (corpus / "more.txt").write_text("More text about posture.\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index", embedder=embedder)
    assert searcher.refresh() is True
    assert old() is None and old_chunk() is None  # freed by reference counting alone
    assert gc.get_freeze_count() >= frozen
    gc.unfreeze()  # (leave the other tests a collector as usual)
