"""Optional CrossEncoder reranking, tested with a tiny model built here (no download)."""

import json

import numpy as np
import pytest

from qa.errors import QAError
from qa.ingest.chunking import embed_text
from qa.retrieve import rerank
from qa.retrieve.searcher import Searcher

WORDS = ("back pain chronic mid thoracic spine treatment massage drugs doctor diagnosis opinion "
         "patients relief cause causes the a of is what how should i").split()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A randomly initialised one-layer BERT cross-encoder with a 30-word vocabulary."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=512,
                        num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reranker_orders_the_first_passages_by_cross_encoder_score(
    report_index, embedder, tiny_cross_encoder
):
    from sentence_transformers import CrossEncoder

    plain = Searcher(report_index, embedder=embedder, reranker="")
    assert plain.reranker is None
    reranked = Searcher(report_index, embedder=embedder, reranker=str(tiny_cross_encoder))
    question = "What causes chronic mid back pain?"
    first = plain.rank(question, rerank.DEPTH)  # the candidates the cross-encoder sees
    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    texts = [embed_text(c.section, t, c.text)
             for c, t in zip(first.passages.chunks, first.passages.titles, strict=True)]
    expected = model.predict([(question, text) for text in texts])
    order = np.argsort(-expected, kind="stable")
    answer = reranked.ask(question, k=3)
    assert [h.start for h in answer.hits] == [first.passages.chunks[i].start for i in order[:3]]
    assert [h.score for h in answer.hits] == pytest.approx([float(expected[i]) for i in order[:3]])
    assert answer.answered is True  # the rule reads the first stage, not the reranker's scores


def test_reranker_from_environment_and_cli(capsys, monkeypatch, report_index, tiny_cross_encoder):
    from qa.cli import main

    monkeypatch.setenv("QA_RERANKER", str(tiny_cross_encoder))
    assert rerank.configured() == str(tiny_cross_encoder)
    code = main(["ask", "chiropractor", "--index", str(report_index), "--json", "-k", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    with_env = json.loads(out)
    monkeypatch.delenv("QA_RERANKER")
    assert rerank.configured() is None
    code = main(["ask", "chiropractor", "--index", str(report_index), "--json", "-k", "2",
                 "--reranker", str(tiny_cross_encoder)])
    out, _ = capsys.readouterr()
    assert json.loads(out)["hits"] == with_env["hits"]
    code = main(["ask", "chiropractor", "--index", str(report_index), "--json", "-k", "2"])
    out, _ = capsys.readouterr()
    assert [h["score"] for h in json.loads(out)["hits"]] != [h["score"] for h in with_env["hits"]]


def test_missing_reranker_is_a_one_line_error(capsys, report_index, tmp_path):
    from qa.cli import main

    code = main(["ask", "chiropractor", "--index", str(report_index), "--reranker",
                 str(tmp_path / "no-model")])
    _, err = capsys.readouterr()
    assert code == 1 and err.startswith("qa: error: no reranker folder at") and "hint:" in err
    assert err.count("\n") == 1
    with pytest.raises(QAError):
        rerank.Reranker(str(tmp_path / "no-model")).scores("q", ["p"])
