"""The report's reader questions (tests/data/report_questions.jsonl) through `Searcher.ask`.

Per mode: hit@1 and hit@3 of the expected paragraph, answerable questions flagged "not
covered", and off-topic questions wrongly answered. Usage:

    python benchmarks/report_questions.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qa.build import build_index  # noqa: E402
from qa.retrieve.fusion import MODES  # noqa: E402
from qa.retrieve.searcher import Searcher  # noqa: E402


def main() -> None:
    lines = (ROOT / "tests/data/report_questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    answerable = [q for q in questions if q["expected"]]
    print(f"{len(answerable)} answerable, {len(questions) - len(answerable)} off-topic\n")
    print("| mode | hit@1 | hit@3 | answerable flagged | off-topic answered |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "corpus", tmp)
        searcher = Searcher(tmp)
        for mode in MODES:
            first = top3 = flagged = wrong = 0
            for q in questions:
                answer = searcher.ask(q["question"], k=3, mode=mode)
                if not q["expected"]:
                    wrong += answer.answered
                    continue
                ok = [" ".join(h.text.split()).startswith(q["expected"]) for h in answer.hits]
                first += bool(ok) and ok[0]  # lexical: no passage has a word
                top3 += any(ok)
                flagged += not answer.answered
            n = len(answerable)
            print(f"| {mode} | {first / n:.3f} | {top3 / n:.3f} | {flagged} | {wrong} |")


if __name__ == "__main__":
    main()
