"""Build speed of the pair of models against all-MiniLM-L6-v2 alone, on the same documents.

Each build is a whole `qa build` of a fresh index (loading the models included) in its own
process; MiniLM alone and the pair take turns (MiniLM, pair, pair, MiniLM, ...) because the
shared machine's load drifts, and the best of each is kept. The issue's target: a pair build at
most 2x a MiniLM-only build (issue 26). Usage:

    python benchmarks/pair_build.py [--dataset medquad-small] [--docs 400] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from common import log, measured_process, write_medquad

MINILM = "all-MiniLM-L6-v2"


def build(corpus: Path, index: Path, model: str | None) -> float:
    """Seconds of one `qa build` of a fresh index (None: the default model, the pair)."""
    args = [sys.executable, "-m", "qa", "build", "-q", "--corpus", str(corpus), "--index",
            str(index)] + (["--model", model] if model else [])  # fmt: skip
    got = measured_process(args, env=dict(os.environ))
    return got["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="medquad-small")
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"minilm": [], "pair": []}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_medquad(args.dataset, corpus, args.docs)
        for r in range(args.rounds):
            order = ("minilm", "pair") if r % 2 == 0 else ("pair", "minilm")
            for which in order:
                index = Path(tmp) / f"index-{which}-{r}"
                seconds = build(corpus, index, MINILM if which == "minilm" else None)
                times[which].append(seconds)
                log(f"round {r + 1}: {which} {seconds:.1f} s (load {os.getloadavg()[0]:.1f})")
    best = {k: min(v) for k, v in times.items()}
    result = {"dataset": args.dataset, "documents": args.docs, "minilm_s": best["minilm"],
              "pair_s": best["pair"], "ratio": best["pair"] / best["minilm"], "target": 2.0,
              "all": times}  # fmt: skip
    print(json.dumps(result))
    held = "yes" if result["ratio"] <= 2 else "no"
    print(f"| {args.dataset}, {args.docs} documents | {best['minilm']:.1f} s "
          f"| {best['pair']:.1f} s | {result['ratio']:.2f}x | <= 2x | {held} |")


if __name__ == "__main__":
    main()
