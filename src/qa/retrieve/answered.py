"""Is the question covered? The calibrated rule behind `Answer.answered`.

A question counts as answered when either
  * some passage is close to it in meaning: the best cosine of question and passage is at least
    `MIN_COSINE`; or
  * some passage contains every content word of the question (stemmed, after a long stop list:
    `lexical.content_terms`) - the evidence a keyword query such as "congenital condition"
    gives, whose cosine is low because it is not phrased like the text.

Calibration (benchmarks/calibrate.py; data kept apart from the report test questions in
tests/data): 888 MedQuAD questions and 150 MedQuAD titles used as keyword queries against
medquad-small, and 16 report questions (benchmarks/data/report_dev_questions.jsonl) against the
report, as questions the documents answer; 40 off-topic questions and keystroke strings
(benchmarks/data/offtopic_questions.txt) against both corpora as questions they do not.
Best cosines: answered 0.397 and up, off-topic 0.309 and below; `MIN_COSINE` is the middle of
that gap. No off-topic question had all its content words in one passage. On this data the rule
makes no error (see the README, "Retrieval quality").
"""

from __future__ import annotations

MIN_COSINE = 0.35


def is_answered(best_cosine: float, passages_with_all_terms: int) -> bool:
    """The rule above.

    Args:
        best_cosine: the highest cosine between the question and any (allowed) passage.
        passages_with_all_terms: how many passages contain every content word of the question.
    """
    return best_cosine >= MIN_COSINE or passages_with_all_terms > 0
