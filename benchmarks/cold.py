"""Part `cold`: (c) `qa ask` from process start to printed answer, against loading the model.

A person asking one question from the shell pays for starting Python, importing `qa`, loading
the index and the model, and the search. The floor is what any sentence-transformers program
pays before it can encode anything: importing sentence_transformers and loading the same
model. Both run as fresh processes on the report's index, once each to warm the page cache,
then alternating; the medians are compared. Target: at most 1.2x. The floor's peak RSS is also
the model-only floor for the serving memory of part `warm`.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from common import ASK, REPORT_CORPUS, K, manifest, measured_process


def cold_ask(report_index: Path, reps: int) -> dict:
    """(c) `qa ask` from process start to answer vs importing sentence-transformers + loading."""
    from qa import config

    _, path = config.resolve_model(config.PACKAGED_MODEL)
    floor_code = ("from sentence_transformers import SentenceTransformer\n"
                  f"SentenceTransformer({path!r}, device='cpu')")
    ask = [sys.executable, "-m", "qa", "ask", ASK, "--index", str(report_index), "-k", str(K)]
    floor_cmd = [sys.executable, "-c", floor_code]
    measured_process(ask)  # warm the page cache for both
    measured_process(floor_cmd)
    runs: dict[str, list[dict]] = {"ask": [], "floor": []}
    for i in range(reps):
        pair = [("ask", ask), ("floor", floor_cmd)]
        for name, cmd in pair if i % 2 else pair[::-1]:
            runs[name].append(measured_process(cmd))
    med = {n: statistics.median(r["seconds"] for r in v) for n, v in runs.items()}
    rss = {n: max(r["rss_mib"] for r in v) for n, v in runs.items()}
    return {"reps": reps, "ask_s": med["ask"], "floor_s": med["floor"],
            "ask_rss_mib": rss["ask"], "floor_rss_mib": rss["floor"],
            "backend": manifest(report_index)["model"].get("backend", "torch")}


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    from qa.build import build_index

    report_index = work / "index-report-cold"
    build_index(REPORT_CORPUS, report_index, backend=backend)
    return cold_ask(report_index, 3 if quick else 5)
