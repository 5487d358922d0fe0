"""A pair's weights for one question: fixed for a language both models read, moved to the model
that reads the question when the other reads English only.

The fixed weights (`DEFAULT`) were chosen on the tuning half of the report's reader questions
and on medquad-small (docs/retrieval.md). all-MiniLM-L6-v2 reads English only: for a
question in Spanish its cosines are noise, so its weight is scaled by the probability that the
question is English, from a language identifier (py3langid: a naive Bayes model over byte
n-grams, bundled, no download), and what it loses goes to the multilingual model. Short English
questions are sometimes taken for another language ("natural or meds?"); the weight then only
leans more on the multilingual model, which reads English too.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa import config
from qa.errors import UsageError

DEFAULT = (0.2, 0.8)  # the default pair: all-MiniLM-L6-v2, multilingual-e5-small
# The languages a question is told apart among: English and the languages most asked in besides
# (a shorter list than py3langid's 97 takes fewer short English questions for another language).
LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl", "pl", "ru", "uk", "cs", "sv", "da", "no",
             "fi", "tr", "ar", "he", "zh", "ja", "ko", "hi", "id", "vi", "el", "ro", "hu")
_LOCK = threading.Lock()


def check(weights: list[float] | tuple[float, ...] | None, models: int) -> tuple[float, ...]:
    """The fixed weights for `models` models: `weights`, else the default.

    Raises:
        UsageError: not one non-negative weight per model, or a sum other than 1.
    """
    if models == 1:
        return (1.0,)
    if weights is None:
        return DEFAULT
    values = tuple(float(w) for w in weights)
    if len(values) != models or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise UsageError(f"weights {list(values)} do not fit {models} models",
                         "give one weight per model, each >= 0, summing to 1")
    return values


@lru_cache(maxsize=1)
def _identifier():
    """py3langid's model, from an uncompressed copy in the cache (its own file is LZMA-packed,
    and unpacking it took about a second of every cold `qa ask`), made once on first use."""
    from py3langid import modelio
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    arrays = _unpacked(MODEL_DIR / MODEL_FILE)
    if arrays is None:  # no cache: read the packed file as py3langid does
        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    else:
        identifier = LanguageIdentifier(
            arrays["ptc"], arrays["pc"], arrays["classes"].tolist(),
            modelio._to_array(arrays["nextmove"]), arrays["out_feat"].tolist(), norm_probs=True,
            tk_row=modelio._to_array(arrays["nextmove_row"]))  # fmt: skip
    identifier.set_languages(list(LANGUAGES))
    return identifier


def _unpacked(packed: Path) -> dict | None:
    """The arrays of py3langid's packed model, unpacked once into the cache folder (None when
    the cache cannot be written or read: the caller reads the packed file)."""
    import lzma

    try:
        stat = packed.stat()
        target = config.cache_dir() / "langid" / f"model-{stat.st_size}-{stat.st_mtime_ns}.npz"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                with lzma.open(packed) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        with np.load(target, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, lzma.LZMAError):
        return None


def english(text: str) -> float:
    """The probability that `text` is English (py3langid, among `LANGUAGES`)."""
    with _LOCK:  # (the identifier is not documented as thread-safe)
        ranked = _identifier().rank(text)
    return float(dict(ranked).get("en", 0.0))


def for_question(text: str, fixed: tuple[float, ...], multilingual: list[bool]) -> np.ndarray:
    """Each model's weight for the question `text` (summing to 1).

    Args:
        fixed: the weights for a question every model reads (`check`).
        multilingual: whether each model reads other languages than English.
    """
    if len(fixed) == 1 or all(multilingual) or not any(multilingual):
        return np.asarray(fixed, dtype=np.float64)  # (no model reads more than another)
    p = english(text)
    scaled = np.array([w if multi else w * p for w, multi in zip(fixed, multilingual,
                                                                  strict=True)])
    if scaled.sum() <= 0:
        return np.asarray(fixed, dtype=np.float64)
    return scaled / scaled.sum()  # what the English models lose goes to the others
