"""Reader questions about the shipped report: the tuning half and the locked half, in English
and in five other languages.

benchmarks/data/reader_questions_{tune,locked}.jsonl were written blind to the ranking and split
once (benchmarks/data/split_reader_questions.py); multilingual_questions_{tune,locked}.jsonl hold
40 questions in Spanish, German, French, Portuguese and Italian, written for the pair of models
and split by alternation within each language. Per set and mode: hit@1, hit@3 and MRR of the
paragraphs that answer (any of `expected`), answerable questions flagged "not covered" and those
that carry a missing-term notice, near-domain and off-topic questions flagged, and near-domain
questions flagged or carrying a notice. Tune on `tune` only; `locked` is reported, never tuned
on. Usage:

    python benchmarks/reader_questions.py [--half tune|locked|both] [--mode M] [--misses]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
sys.path.insert(0, str(ROOT / "src"))

from qa.build import build_index  # noqa: E402
from qa.ingest.text import normalize  # noqa: E402
from qa.retrieve.fusion import MODES  # noqa: E402
from qa.retrieve.searcher import Searcher  # noqa: E402


def load(name: str) -> list[dict]:
    lines = (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def score(searcher: Searcher, questions: list[dict], mode: str, misses: bool = False) -> dict:
    """The metrics of one half in one mode."""
    first = top3 = rr = flagged = noticed = 0
    caught = {"near-domain": 0, "off-topic": 0}
    counts = {"answerable": 0, "near-domain": 0, "off-topic": 0}
    near_told = 0
    for q in questions:
        counts[q["kind"]] += 1
        answer = searcher.ask(q["question"], k=10, mode=mode)
        if q["kind"] != "answerable":
            caught[q["kind"]] += not answer.answered
            if q["kind"] == "near-domain":
                near_told += not answer.answered or bool(answer.missing_terms)
            if misses and answer.answered:
                print(f"  answered {q['kind']}: {q['question']} {answer.missing_terms}")
            continue
        noticed += bool(answer.missing_terms)
        ranks = [i for i, h in enumerate(answer.hits, 1)
                 if any(normalize(h.text).startswith(e) for e in q["expected"])]
        best = ranks[0] if ranks else None
        first += best == 1
        top3 += best is not None and best <= 3
        rr += 1 / best if best else 0
        flagged += not answer.answered
        if misses and (best != 1 or not answer.answered):
            got = normalize(answer.hits[0].text)[:40] if answer.hits else "-"
            note = "" if answer.answered else " [NOT COVERED]"
            print(f"  rank {best}{note}: {q['question']}  -> {got}")
    n = counts["answerable"]
    return {
        "hit@1": first / n, "hit@3": top3 / n, "mrr": rr / n, "answerable_flagged": flagged,
        "answerable": n, "answerable_noticed": noticed, "near_domain_told": near_told,
        "near_domain_flagged": caught["near-domain"],
        "near_domain": counts["near-domain"], "off_topic_flagged": caught["off-topic"],
        "off_topic": counts["off-topic"],
    }


def row(name: str, mode: str, r: dict) -> str:
    def part(done: str, total: str) -> str:
        return f"{r[done]}/{r[total]}" if r[total] else "-"

    return (f"| {name} | {mode} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['mrr']:.3f} | "
            f"{part('answerable_flagged', 'answerable')} | "
            f"{part('answerable_noticed', 'answerable')} | "
            f"{part('near_domain_flagged', 'near_domain')} | "
            f"{part('near_domain_told', 'near_domain')} | "
            f"{part('off_topic_flagged', 'off_topic')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("tune", "locked", "both"), default="both")
    parser.add_argument("--mode", choices=MODES, action="append")
    parser.add_argument("--misses", action="store_true", help="print each miss")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    halves = ["tune", "locked"] if args.half == "both" else [args.half]
    sets = [f"{kind}_questions_{half}" for kind in ("reader", "multilingual") for half in halves]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "corpus", tmp)
        searcher = Searcher(tmp)
        for name in sets:
            for mode in args.mode or ["hybrid"]:
                if args.misses:
                    print(f"{name} / {mode}:")
                results[f"{name}/{mode}"] = score(searcher, load(name), mode, args.misses)
    if args.json:
        print(json.dumps(results))
        return
    print("| set | mode | hit@1 | hit@3 | MRR | answerable flagged | answerable with a notice "
          "| near-domain flagged | near-domain flagged or with a notice | off-topic flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        name, mode = key.split("/")
        print(row(name.replace("_questions", ""), mode, r))


if __name__ == "__main__":
    main()
