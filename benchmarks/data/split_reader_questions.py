"""Split reader_questions_all.jsonl into a tuning half and a locked test half.

Deterministic: one random.Random(20261202), groups visited in sorted order,
stratified by kind and (for answerable questions) by expected[0] paragraph.
Run again and the two output files are byte-identical.
"""
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "reader_questions_all.jsonl"
TUNE = HERE / "reader_questions_tune.jsonl"
LOCKED = HERE / "reader_questions_locked.jsonl"
SEED = 20261202


def main():
    lines = SRC.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    groups = {}
    for r in rows:
        key = (r["kind"], r["expected"][0] if r["expected"] else "")
        groups.setdefault(key, []).append(r)
    rng = random.Random(SEED)
    tune, locked = [], []
    extra_to_tune = True  # odd-sized groups: alternate which half gets the spare
    for key in sorted(groups):
        g = list(groups[key])
        rng.shuffle(g)
        half = len(g) // 2
        if len(g) % 2:
            cut = half + 1 if extra_to_tune else half
            extra_to_tune = not extra_to_tune
        else:
            cut = half
        tune.extend(g[:cut])
        locked.extend(g[cut:])
    for path, part in ((TUNE, tune), (LOCKED, locked)):
        with path.open("w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"tune={len(tune)} locked={len(locked)}")


if __name__ == "__main__":
    main()
