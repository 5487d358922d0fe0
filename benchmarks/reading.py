"""What reading every file in a bounded child process costs: a corpus of many small notes.

Times `load_corpus` on N two-line .txt notes three ways: each file parsed in this process (as
before the reading limits: `formats.parse_bytes`), a first build (each file read in the
child, its text then kept), and a build after it (every text taken from the cache).

Usage:
    python benchmarks/reading.py [--files 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        os.environ["QA_CACHE"] = str(Path(temp) / "cache")
        from qa.ingest.loaders import LoadResult, load_corpus, read_corpus
        from qa.ingest.loaders.formats import parse_bytes

        corpus = Path(temp) / "corpus"
        corpus.mkdir()
        for i in range(args.files):
            (corpus / f"note-{i:05d}.txt").write_text(
                f"Note {i}\n\nNote {i} is about posture and sleep. It says rest helps.\n")
        started = time.perf_counter()
        read = read_corpus(corpus, LoadResult([], []))
        assert len([parse_bytes(rel, data) for rel, data, _ in read]) == args.files
        in_process = time.perf_counter() - started
        times = []
        for _ in range(2):
            started = time.perf_counter()
            assert len(load_corpus(corpus).documents) == args.files
            times.append(time.perf_counter() - started)
    print(f"{args.files} notes, load average {os.getloadavg()[0]:.1f}: in this process "
          f"{in_process:.2f} s; in the child, first build {times[0]:.2f} s, "
          f"texts kept {times[1]:.2f} s")


if __name__ == "__main__":
    main()
