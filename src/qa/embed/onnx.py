"""The embedding model exported to ONNX and run with onnxruntime, without torch at query time.

sentence-transformers' own ONNX backend needs `optimum-onnx`, whose releases pin
transformers < 4.58 while sentence-transformers 6 needs transformers >= 5: the two cannot be
installed together. So `qa` exports the model itself, offline, from the local model folder:
torch's ONNX exporter writes the transformer, onnxruntime's dynamic quantizer optionally makes
an int8 copy, and this module does the rest of what sentence-transformers does for this kind
of model (tokenise, pool, normalise) with the `tokenizers` library and numpy.

An export is cached under ``$QA_CACHE/onnx/<model>-<hash>/`` (default ``~/.cache/qa``), made once
per model and reused by every index; deleting it is safe (the next use exports again). The
graph takes the token vectors, not the token ids: the word embedding table is kept beside it as
a plain array (`embeddings.npy`) that is memory-mapped and looked up with numpy. A question
reads only its tokens' rows, and a session no longer loads the table: multilingual-e5-small's
250,037 x 384 floats made 384 MB of its 465 MB graph, and its session took 3 s to start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qa import config
from qa.embed.pooling import normalized, pool_spans
from qa.errors import QAError

log = logging.getLogger(__name__)

EXPORT_VERSION = 2  # 2: the graph takes token vectors; the table is embeddings.npy
META = "qa_onnx.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
EMBEDDINGS = "embeddings.npy"  # the word embedding table, (vocabulary, dim) float32
_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def export_dir(model_id: str, load_path: str) -> Path:
    """Where the ONNX export of a model is cached."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}\x00{model_id}\x00{load_path}".encode()).hexdigest()
    slug = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in model_id)[-60:]
    return config.cache_dir() / "onnx" / f"{slug}-{digest[:12]}"


def load(model_id: str, load_path: str, backend: str, threads: int) -> OnnxModel:
    """The model on an ONNX backend, exported on first use (`ensure_export`).

    A cached export that cannot be read (a truncated or overwritten file: the cache is derived
    data, copied and cleaned by hand) is exported again, once, with a warning, instead of
    failing every run until someone deletes the folder.
    """
    folder = export_dir(model_id, load_path)
    path = ensure_export(model_id, load_path, backend)
    seen = _stamp(folder)  # the export read below; another process may replace it meanwhile

    def export_again() -> Path:
        log.warning("the model's ONNX export in %s cannot be read; exporting it again", folder)
        return ensure_export(model_id, load_path, backend, damaged=seen)

    try:
        return OnnxModel(path, threads, export_again)
    except QAError:
        raise
    except Exception:  # noqa: BLE001 - damaged metadata or tokenizer: whatever the parser raises
        return OnnxModel(export_again(), threads)


def ensure_export(model_id: str, load_path: str, backend: str,
                  damaged: tuple[int, int] | None = None) -> Path:  # fmt: skip
    """The ONNX file for `backend` ("onnx" or "onnx-int8"), exported on first use.

    Args:
        damaged: the stamp (`_stamp`) of an export found unreadable: it is replaced, unless
            another process replaced it already (two server workers find the same damage; the
            second must not delete the export the first is loading).

    Raises:
        QAError: the model cannot be exported (not a mean/CLS-pooled transformer), or the
            cache cannot be written (a full disk, a read-only home).
    """
    folder = export_dir(model_id, load_path)
    target = folder / FILES[backend]
    if damaged is None and (folder / META).is_file() and target.is_file():
        return target
    from filelock import FileLock

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if damaged is not None and _stamp(folder) == damaged:
                shutil.rmtree(folder, ignore_errors=True)
            if not ((folder / META).is_file() and (folder / FILES["onnx"]).is_file()):
                _export(load_path, folder)
            if not target.is_file():
                _quantize(folder / FILES["onnx"], target)
    except OSError as exc:  # writing the cache; a file elsewhere (the model's) is not ours to name
        if exc.filename is not None and not str(exc.filename).startswith(str(config.cache_dir())):
            raise
        raise QAError(
            f"cannot write the model's ONNX export in {folder.parent}: {exc.strerror or exc}",
            "free some disk space, or set QA_CACHE to a writable folder with room for it (about "
            "the model's size)",
        ) from None
    return target


def _stamp(folder: Path) -> tuple[int, int] | None:
    """Which export a folder holds: its metadata file's inode and time (each export writes a
    new one), or None when there is none."""
    try:
        stat = (folder / META).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _publish(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)


def _export(load_path: str, folder: Path) -> None:
    """Export a sentence-transformers model (Transformer -> Pooling [-> Normalize]) to ONNX."""
    import torch

    from qa.embed import torch_model

    st = torch_model.load(load_path)
    names = [type(m).__name__ for m in st]
    pooling = _pooling_mode(st[1]) if len(st) > 1 else None
    if names[:2] != ["Transformer", "Pooling"] or pooling is None or len(names) > 3:
        raise QAError(
            f"model {load_path!r} cannot run on the ONNX backend (modules: {', '.join(names)})",
            "use --backend torch",
        )
    transformer = st[0].auto_model
    inputs = ["inputs_embeds"] + [n for n in ("attention_mask", "token_type_ids")
                                  if n in st.tokenizer.model_input_names]

    class _Wrapper(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(inputs, args, strict=True))).last_hidden_state

    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        sample = st.tokenizer(["a short text", "a somewhat longer text to pad"], padding=True,
                              return_tensors="pt")
        table = transformer.get_input_embeddings().weight.detach()
        sample["inputs_embeds"] = table[sample["input_ids"]]
        _save_array(tmp / EMBEDDINGS, table.numpy().astype(np.float32))
        axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on branches that padding never takes
            torch.onnx.export(
                _Wrapper(transformer).eval(), tuple(sample[n] for n in inputs),
                str(tmp / FILES["onnx"]), input_names=inputs, output_names=["last_hidden_state"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        st.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {
            "version": EXPORT_VERSION,
            "source": load_path,
            "inputs": inputs,
            "pooling": pooling,
            "normalize": len(names) == 3 and names[2] == "Normalize",
            "max_seq_length": int(st.max_seq_length),
            "dim": int(st.get_embedding_dimension()),
            "pad_id": int(st.tokenizer.pad_token_id or 0),
            "pad_token": st.tokenizer.pad_token or "[PAD]",
            "torch": torch.__version__,
        }
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_array(path: Path, array: np.ndarray) -> None:
    """`np.save`, written with plain file writes: a full disk is then an OSError naming its
    cause ("File too large"), not numpy's "N requested and M written"."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
        fh.write(np.ascontiguousarray(array).data)


def _pooling_mode(module) -> str | None:
    """"mean" or "cls" for a Pooling module this file can reproduce, else None."""
    cfg = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
    mode = cfg.get("pooling_mode")  # sentence-transformers >= 6
    if mode is None:  # older releases: one flag per mode
        modes = [name for key, name in _POOLING.items() if cfg.get(key)]
        on = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
        mode = modes[0] if len(modes) == 1 and len(on) == 1 else None
    return mode if mode in ("mean", "cls") and cfg.get("include_prompt", True) else None


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the matrix products (weights per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice meant for image models
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


class _Tokenizer:
    """The two calls `Embedder` makes on a tokenizer, over a `tokenizers.Tokenizer`."""

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer

    def __call__(self, text: str, add_special_tokens: bool = True, **_: object) -> dict:
        """{"input_ids": [...]}, like a Hugging Face tokenizer (other options have no effect)."""
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids: list[int], **_: object) -> str:
        return self._tok.decode(ids)


class OnnxModel:
    """An exported model behind the part of SentenceTransformer's interface `qa` uses.

    Args:
        path: the .onnx file (its folder holds tokenizer.json and qa_onnx.json).
        threads: intra-op threads for encoding many texts; a single text (a question) runs on
            one thread, which measured far faster on a busy machine (docs/performance.md).
    """

    def __init__(self, path: Path, threads: int,
                 export_again: Callable[[], Path] | None = None) -> None:  # fmt: skip
        from tokenizers import Tokenizer

        meta = json.loads((path.parent / META).read_text(encoding="utf-8"))
        self.meta = meta
        self.max_seq_length = int(meta["max_seq_length"])
        self._tok = Tokenizer.from_file(str(path.parent / "tokenizer.json"))  # (read once:
        self._tok.no_truncation()  # e5's takes 0.7 s; batches are cut and padded by `_encode`)
        self._tok.no_padding()
        self._specials = self._tok.num_special_tokens_to_add(False)
        self.tokenizer = _Tokenizer(self._tok)
        self._embeddings = np.load(path.parent / EMBEDDINGS, mmap_mode="r")
        self._path = path
        self._threads = threads
        self._sessions: dict[int, object] = {}
        self._export_again = export_again  # for a model file that cannot be read (once)

    def session(self, threads: int):
        """An onnxruntime session with `threads` intra-op threads (made on first use).

        Raises:
            QAError: the model file cannot be read, even exported again.
        """
        if threads not in self._sessions:
            try:
                self._sessions[threads] = self._new_session(threads)
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes
                if self._export_again is None:
                    raise QAError(
                        f"cannot read the model's ONNX export {self._path}: "
                        f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                        f"delete {self._path.parent}; the next run exports the model again",
                    ) from None
                self._path, self._export_again = self._export_again(), None
                return self.session(threads)
        return self._sessions[threads]

    def _new_session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(self._path), options, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        return int(self.meta["dim"])

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
        **_: object,
    ) -> np.ndarray:
        """Embeddings of `texts` (longest first in batches, returned in input order)."""
        out, _spans = self._run(texts, None, batch_size, show_progress_bar)
        return normalized(out) if normalize_embeddings or self.meta["normalize"] else out

    def encode_tokens(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One text's normalised embedding (shape (1, dim), as `encode` gives it), its token
        outputs (tokens, dim) and their character offsets (tokens, 2)."""
        hidden, mask, encodings = self._forward([text])
        return normalized(self._pool(hidden, mask)), hidden[0], np.asarray(encodings[0].offsets)

    def encode_spans(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised embeddings of `texts`, and the mean token output of each character span
        (one row per span, in order, not normalised; zeros where no token overlaps it)."""
        out, span_out = self._run(texts, spans, batch_size, show_progress_bar)
        return normalized(out), span_out

    def _run(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]] | None,
        batch_size: int,
        show_progress_bar: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        dim = self.get_embedding_dimension()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), dim), dtype=np.float32)
        span_out = None
        if spans is not None:
            first = np.concatenate(([0], np.cumsum([len(s) for s in spans])))
            span_out = np.zeros((int(first[-1]), dim), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        for start in starts:
            idx = order[start : start + batch_size]
            hidden, mask, encodings = self._forward([texts[i] for i in idx])
            out[idx] = self._pool(hidden, mask)
            if span_out is not None:
                for row, i in enumerate(idx):
                    span_out[first[i] : first[i + 1]] = pool_spans(
                        hidden[row], np.asarray(encodings[row].offsets), spans[i]
                    )
        return out, span_out

    def _forward(self, batch: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
        """The model's token outputs for a batch, its attention mask and the encodings."""
        encodings = self._encode(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "inputs_embeds": np.ascontiguousarray(self._embeddings[ids], dtype=np.float32),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        session = self.session(1 if len(batch) == 1 else self._threads)
        (hidden,) = session.run(None, {n: feeds[n] for n in self.meta["inputs"]})
        return hidden, feeds["attention_mask"], encodings

    def _encode(self, batch: list[str]) -> list:
        """The texts' encodings as the model reads them: cut to its window (the special tokens
        kept, as the tokenizer's own truncation does), then padded to the longest."""
        encodings = self._tok.encode_batch(batch, add_special_tokens=False)
        for e in encodings:
            e.truncate(self.max_seq_length - self._specials)
        encodings = [self._tok.post_process(e) for e in encodings]
        longest = max(len(e.ids) for e in encodings)
        for e in encodings:
            e.pad(longest, pad_id=self.meta["pad_id"], pad_token=self.meta["pad_token"])
        return encodings

    def _pool(self, hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self.meta["pooling"] == "cls":
            return hidden[:, 0]
        mask = attention_mask[..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
