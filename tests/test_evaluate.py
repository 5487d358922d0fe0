"""`qa.evaluate`: metrics against trec_eval (pytrec_eval), data set loading, and `qa eval`."""

import json
import shutil
from pathlib import Path

import pytest
import pytrec_eval

from qa.cli import main
from qa.errors import QAError
from qa.evaluate import (
    evaluate,
    load_dataset,
    mrr_at,
    ndcg_at,
    rank_documents,
    recall_at,
    score_run,
)

TINY = Path(__file__).resolve().parent / "data" / "beir-tiny"

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d9": 1},
    "q2": {"d4": 1},
    "q3": {"d5": 3, "d6": 2, "d7": 1},
    "q4": {"d8": 1},
}
RUN = {
    "q1": ["d3", "d2", "d5", "d1", "d6", "d7", "d8", "d4", "d0", "dx", "d9"],
    "q2": ["d1", "d2", "d3", "d5", "d6", "d7", "d8", "d9", "d0", "dx", "dy", "d4"],
    "q3": ["d7", "d6", "d5"],
    "q4": [],  # no results at all: scores 0
}


def trec(run, qrels, measures):
    """pytrec_eval over a run given as rankings (scores strictly decreasing, so no ties)."""
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in run.items() if r}
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(scored)


def test_metrics_match_trec_eval():
    ours = score_run(RUN, QRELS, "dense")
    ref = trec(RUN, QRELS, {"ndcg_cut.10", "recall.10", "recall.100"})
    for q, ranking in RUN.items():
        expected = ref.get(q, {"ndcg_cut_10": 0.0, "recall_10": 0.0, "recall_100": 0.0})
        assert ndcg_at(ranking, QRELS[q], 10) == pytest.approx(expected["ndcg_cut_10"], abs=1e-4)
        assert recall_at(ranking, QRELS[q], 10) == pytest.approx(expected["recall_10"], abs=1e-4)
        assert recall_at(ranking, QRELS[q], 100) == pytest.approx(expected["recall_100"], abs=1e-4)
    # MRR@10: trec_eval's recip_rank over the run cut to 10 documents
    cut = {q: r[:10] for q, r in RUN.items()}
    rr = trec(cut, QRELS, {"recip_rank"})
    for q, ranking in RUN.items():
        assert mrr_at(ranking, QRELS[q], 10) == pytest.approx(rr.get(q, {}).get("recip_rank", 0.0))
    n = len(RUN)
    assert ours.queries == 4
    ndcg = sum(ref.get(q, {}).get("ndcg_cut_10", 0) for q in RUN) / n
    assert ours.ndcg == pytest.approx(ndcg)
    recall = sum(ref.get(q, {}).get("recall_100", 0) for q in RUN) / n
    assert ours.recall_100 == pytest.approx(recall)
    assert 0 < ours.ndcg < 1 and ours.mode == "dense"


def test_metric_edge_cases():
    assert ndcg_at(["a", "b"], {"a": 1}) == 1.0
    assert ndcg_at(["b", "a"], {"a": 1}) == pytest.approx(1 / 1.5849625)  # 1/log2(3)
    assert ndcg_at(["x"], {"a": 0}) == 0.0  # nothing relevant
    assert mrr_at(["x"] * 10 + ["a"], {"a": 1}) == 0.0  # beyond the cut-off
    assert recall_at(["a", "c"], {"a": 1, "b": 2, "c": 0}, 10) == 0.5
    assert score_run({}, {"q": {"d": 0}}, "hybrid").queries == 0
    # pairs: a repeated query id counts once per question
    twice = score_run([("q", ["a"]), ("q", ["b"])], {"q": {"a": 1}}, "dense")
    assert twice.queries == 2 and twice.mrr == 0.5


def test_load_dataset(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T", "text": "Some text."}\n\n'
        '{"_id": "d2", "text": "More."}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "text?"}\n{"_id": "q2", "text": "x"}\n'
    )
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0\n")
    ds = load_dataset(tmp_path)
    assert [d.path for d in ds.documents] == ["d1", "d2"]
    assert ds.queries == [("q1", "text?"), ("q2", "x")]
    assert ds.documents[0].title == "T" and ds.documents[0].text == "Some text."
    assert ds.qrels == {"q1": {"d1": 1}}  # q2 has no relevant document
    # a repeated id keeps both records (as in medquad-small)
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "text": "One."}\n{"_id": "d1", "text": "Two."}\n')
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n')
    ds = load_dataset(tmp_path)
    assert [(d.path, d.text, d.metadata["corpus_id"]) for d in ds.documents] == [
        ("d1", "One.", "d1"), ("d1#2", "Two.", "d1")]
    assert ds.queries == [("q1", "a"), ("q1", "b")]
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tmany\n")
    with pytest.raises(QAError, match="qrels.tsv:2"):
        load_dataset(tmp_path)
    (tmp_path / "queries.jsonl").write_text("not json\n")
    with pytest.raises(QAError, match="queries.jsonl:1"):
        load_dataset(tmp_path)
    with pytest.raises(QAError, match="no data set folder"):
        load_dataset(tmp_path / "missing")


def test_rank_documents_by_best_passage():
    assert rank_documents(["a", "b", "a", "c", "b"], [2, 0, 4, 3]) == ["a", "b", "c"]
    assert rank_documents(["a", "b", "c"], [2, 1, 0], depth=2) == ["c", "b"]


def test_eval_cli_json_on_a_tiny_data_set(capsys, tmp_path):
    index = tmp_path / "index"
    code = main(["eval", str(TINY), "--json", "--index", str(index)])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"ndcg@10", "mrr@10", "recall@10", "recall@100", "queries", "mode"}
    assert result["queries"] == 6 and result["mode"] == "hybrid"  # q7 has nothing relevant
    assert result["recall@100"] == 1.0  # 8 documents: all of them are ranked
    assert result["ndcg@10"] > 0.8 and result["mrr@10"] > 0.8
    assert (index / "current" / "manifest.json").is_file()  # kept for the next run
    code = main(["eval", str(TINY), "--mode", "lexical", "-k", "5", "--index", str(index)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.splitlines()[0] == "6 queries, mode lexical"
    assert out.splitlines()[1].startswith("nDCG@5 ")


def test_eval_never_replaces_an_index_of_another_corpus(capsys, tmp_path, report_index):
    """Found by trying: `qa eval DATASET --index index` rebuilt a reader's report index from
    the data set, without a word (`--index` is meant for a folder kept for the next run)."""
    index = tmp_path / "index"
    shutil.copytree(report_index, index, symlinks=True)
    live = (index / "current").resolve()
    code = main(["eval", str(TINY), "--index", str(index)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"qa: error: the index at {index} was built from ") and (
        "not from this data set; qa eval would replace it (hint: give --index a folder of its "
        "own; qa eval keeps it for the next run)\n") in err  # fmt: skip
    assert (index / "current").resolve() == live and [p.name for p in
                                                      (index / "builds").iterdir()] == [live.name]


def test_eval_in_each_mode(embedder):
    dense = evaluate(TINY, mode="dense", embedder=embedder)
    lexical = evaluate(TINY, mode="lexical", embedder=embedder)
    assert (dense.mode, lexical.mode) == ("dense", "lexical")
    assert dense.queries == lexical.queries == 6
    assert dense.recall_100 == 1.0  # dense ranks every document
    assert lexical.recall_100 < 1.0  # "repair a puncture on my bike" shares no word with d3
    assert 0.5 < lexical.ndcg <= 1 and 0.5 < dense.ndcg <= 1


def test_eval_errors_are_one_line(capsys, tmp_path):
    code = main(["eval", str(tmp_path / "missing")])
    _, err = capsys.readouterr()
    assert code == 1 and err.startswith("qa: error: no data set folder") and err.count("\n") == 1
    code = main(["eval", str(TINY), "--mode", "fuzzy"])
    _, err = capsys.readouterr()
    assert code == 2 and "invalid choice" in err


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", "[" * 100_000 + "]" * 100_000])
def test_eval_names_a_damaged_line_of_the_data_set(capsys, tmp_path, line):
    """A corpus line that is not a JSON object with an _id, including one nested deeper than
    the parser recurses (it was an "unexpected RecursionError"), is named with its line."""
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").count("\n")
    code = main(["eval", str(data)])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"qa: error: {data / 'corpus.jsonl'}:{lines}: not a JSON object")


def test_ids_that_look_like_the_numbering_of_repeats_are_kept_apart(tmp_path, embedder):
    """Ids d1, d1, d1#2: the second d1 was numbered "d1#2", the same path as the third record,
    and the build failed with "unexpected ValueError: cannot write an invalid manifest"."""
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"_id": "d1", "text": "A second text filed under d1."}\n'
                 '{"_id": "d1#2", "text": "A record whose own id is d1#2."}\n')  # fmt: skip
    ds = load_dataset(data)
    paths = [d.path for d in ds.documents]
    assert len(set(paths)) == len(paths) and paths[-2:] == ["d1#2", "d1#2#2"]
    assert [d.metadata["corpus_id"] for d in ds.documents][-2:] == ["d1", "d1#2"]
    assert evaluate(data, mode="lexical", embedder=embedder).queries == 6


@pytest.mark.parametrize("name, line", [("corpus.jsonl", 2), ("queries.jsonl", 3),
                                        ("qrels.tsv", 2)])  # fmt: skip
def test_a_byte_that_is_not_utf8_is_named_with_its_line(capsys, tmp_path, name, line):
    """It was "unexpected UnicodeDecodeError", without the file or line."""
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    lines = (data / name).read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1][:1] + b"\xf6" + lines[line - 1][1:]  # Latin-1 "ö"
    (data / name).write_bytes(b"\n".join(lines))
    code = main(["eval", str(data)])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1
    assert err == (f"qa: error: {data / name}:{line}: not UTF-8 text (byte 0xf6 at column 2) "
                   "(hint: save the file as UTF-8)\n")


def test_a_query_without_text_is_named_and_left_out_not_scored_as_a_miss(tmp_path, embedder,
                                                                        caplog):  # fmt: skip
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    queries = (data / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(queries[1])["_id"] == "q2"
    queries[1] = json.dumps({"_id": "q2", "text": " \t\u200b "})  # nothing to search for
    (data / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    assert load_dataset(data).empty == [f"{data / 'queries.jsonl'}:2 (q2)"]
    full = evaluate(TINY, mode="lexical", embedder=embedder)
    with caplog.at_level("WARNING", logger="qa.evaluate"):
        result = evaluate(data, mode="lexical", embedder=embedder)
    assert result.queries == full.queries - 1  # not a miss that lowers every metric
    assert caplog.messages == [
        f"1 query without text left out of the scores: {data / 'queries.jsonl'}:2 (q2)"]
