"""Write src/qa/retrieve/common_words.txt: the English words every question may use.

They are the words with a Zipf frequency of at least `qa.retrieve.missing.COMMON_ZIPF` in
wordfreq's English list (Robyn Speer's wordfreq 3: subtitles, books, Wikipedia, the web;
its data is CC BY-SA 4.0, and so is this list), folded as `qa.ingest.terms.words` folds a
question. `qa.retrieve.missing` reads the list, so `qa` needs no word-frequency library at run
time. Usage (with `pip install wordfreq`):

    python scripts/common_words.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qa.ingest.terms import words  # noqa: E402
from qa.retrieve.missing import COMMON_WORDS_FILE, COMMON_ZIPF  # noqa: E402


def main() -> None:
    from importlib.metadata import version as installed

    from wordfreq import iter_wordlist, zipf_frequency

    version = installed("wordfreq")

    found: set[str] = set()
    for word in iter_wordlist("en"):
        if zipf_frequency(word, "en") < COMMON_ZIPF:
            break  # (the list is in order of frequency)
        folded = words(word)
        if len(folded) == 1 and folded[0].isalpha():
            found.add(folded[0])
    header = (f"# English words with a Zipf frequency >= {COMMON_ZIPF} in wordfreq {version} "
              "(CC BY-SA 4.0), folded as qa reads questions.\n"
              "# Written by scripts/common_words.py; read by qa.retrieve.missing.\n")
    COMMON_WORDS_FILE.write_text(header + "\n".join(sorted(found)) + "\n", encoding="utf-8")
    print(f"wrote {len(found)} words to {COMMON_WORDS_FILE}")


if __name__ == "__main__":
    main()
