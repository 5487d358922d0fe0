"""SIGKILL a build of a few hundred documents at several moments: the previous index stays live
and answers identically, and the next build cleans up what the killed one left.

Two ways to pick the moment, neither of which changes what `qa build` does:
- from outside: `python -m qa --debug build` logs its stages on stderr; the test kills it with
  SIGKILL as soon as a stage's line appears ("lock taken", "embedding N passages");
- from inside: a small harness runs the same `qa.cli.main` after wrapping one function, and the
  process SIGKILLs itself at an exact point: half-way through writing dense.faiss, just before
  the `current` link is swapped, just after it was swapped (before the clean-up).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa.build import build_index
from qa.retrieve.searcher import Searcher
from qa.store import folder as store

DOCS = 300
QUESTIONS = ["Which note covers posture?", "sleep and mattress", "knee injury recovery",
             "What helps with stiffness?", "stretching every morning"]  # fmt: skip
WORDS = (
    "posture sleep mattress knee injury recovery stiffness stretching morning spine muscle "
    "joint heat ice massage walking swimming yoga desk chair screen lifting bending twisting "
    "doctor therapy exercise rest pain ache strain sprain nerve disc shoulder neck hip ankle"
).split()

HARNESS = r"""
import os, signal, sys
from pathlib import Path

moment, argv = sys.argv[1], sys.argv[2:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

import qa.store.folder as folder
import qa.store.local as local
import qa.store.local_writer as writer

if moment == "mid-write":  # dense.faiss half written, then killed
    real_write = writer.write_file
    def _write_file(path, data):
        if Path(path).name == "dense.faiss":
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            die()
        real_write(path, data)
    writer.write_file = _write_file
elif moment == "before-switch":  # complete build renamed into place, `current` not yet swapped
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "current":
            die()
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif moment == "after-switch":  # new build live, old one not yet removed
    real_clean_up = folder.clean_up
    calls = []
    def clean_up(index_dir):
        calls.append(index_dir)
        if len(calls) == 2:  # the first runs before the build, the second after the switch
            die()
        return real_clean_up(index_dir)
    folder.clean_up = local.clean_up = clean_up
else:
    raise SystemExit(f"unknown moment {moment}")

from qa.cli import main
sys.exit(main(argv))
"""


def write_corpus(root: Path, variant: str) -> Path:
    """DOCS small documents; variant "few" changes 3, removes 1, adds 1; "all" changes all."""
    root.mkdir(parents=True)
    for i in range(DOCS):
        if variant == "few" and i == 7:
            continue
        rng = random.Random(i)
        w = rng.sample(WORDS, 6)
        text = (f"Note {i}\n\nNote {i} is about {w[0]} and {w[1]}. It says {w[2]} helps with "
                f"{w[3]}, and that {w[4]} matters for {w[5]}.\n")
        if variant == "all" or (variant == "few" and i in (3, 150, 299)):
            text += f"Revised: {w[5]} before {w[0]}.\n"
        (root / f"note-{i:03d}.txt").write_text(text, encoding="utf-8")
    if variant == "few":
        (root / "new-note.txt").write_text("A new note on posture at the desk.\n", "utf-8")
    return root


def answers(index: Path, embedder) -> list[tuple]:
    searcher = Searcher(index, embedder=embedder)
    return [
        tuple((h.doc, h.start, h.end, h.score) for h in searcher.search(q, k=5))
        for q in QUESTIONS
    ]


def leftovers(index: Path) -> list[str]:
    """Everything in the index folder besides the live build, its link and the lock file."""
    live = store.current_build(index)
    found = [p.name for p in (index / "builds").iterdir() if p.resolve() != live]
    found += [p.name for p in index.iterdir() if p.name.startswith(".current.")]
    return sorted(found)


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder):
    """Corpora A (indexed), "few" and "all" (the killed builds' corpora), and A's index."""
    root = tmp_path_factory.mktemp("kill")
    corpora = {v: write_corpus(root / f"corpus-{v}", v) for v in ("a", "few", "all")}
    build_index(corpora["a"], root / "index", embedder=embedder)
    return root, corpora, answers(root / "index", embedder)


@pytest.fixture
def index(world, tmp_path):
    """A private copy of A's index."""
    target = tmp_path / "index"
    shutil.copytree(world[0] / "index", target, symlinks=True)
    return target


def kill_on_log_line(index: Path, corpus: Path, stage: str) -> subprocess.Popen:
    """Run the real `python -m qa build`; SIGKILL it when its debug log shows `stage`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa", "--debug", "build", "-q", "--corpus", str(corpus),
         "--index", str(index)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("qa: debug: " + stage):
            proc.send_signal(signal.SIGKILL)
            break
    proc.stderr.close()
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(lines[-20:])
    return proc


def kill_in_harness(index: Path, corpus: Path, moment: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS, moment, "build", "-q", "--corpus", str(corpus),
         "--index", str(index)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def assert_previous_index_intact(index: Path, world, embedder) -> None:
    root, _, before = world
    live = store.current_build(index)
    assert live.name == store.current_build(root / "index").name  # still the previous build
    assert answers(index, embedder) == before  # loads (checksums verified) and answers the same


def assert_next_build_cleans_up(index: Path, world, embedder) -> None:
    _, corpora, _ = world
    summary = build_index(corpora["few"], index, embedder=embedder)
    assert summary.documents == DOCS
    assert leftovers(index) == []
    assert not list(index.glob("builds/*.tmp"))
    assert Searcher(index, embedder=embedder).search("posture at the desk", k=1)[0].doc == (
        "new-note.txt"
    )


@pytest.mark.parametrize("stage", ["lock taken", "embedding"])
def test_kill_real_build_process(index, world, embedder, stage):
    corpus = world[1]["all" if stage == "embedding" else "few"]
    kill_on_log_line(index, corpus, stage)
    assert_previous_index_intact(index, world, embedder)
    assert_next_build_cleans_up(index, world, embedder)


def test_kill_mid_write(index, world, embedder):
    kill_in_harness(index, world[1]["few"], "mid-write")
    [tmp] = leftovers(index)
    assert tmp.endswith(".tmp")  # the torn build is there, never live
    assert_previous_index_intact(index, world, embedder)
    assert_next_build_cleans_up(index, world, embedder)


def test_kill_before_switch(index, world, embedder):
    kill_in_harness(index, world[1]["few"], "before-switch")
    left = leftovers(index)
    assert len(left) == 2 and left[0].startswith(".current.")  # a complete build, never live
    assert_previous_index_intact(index, world, embedder)
    assert_next_build_cleans_up(index, world, embedder)


def test_kill_after_switch(index, world, embedder):
    """Killed after the switch: the new index is live, complete and answers; the old build is
    left behind until the next build."""
    kill_in_harness(index, world[1]["few"], "after-switch")
    [old] = leftovers(index)
    assert old == store.current_build(world[0] / "index").name
    killed = answers(index, embedder)
    assert_next_build_cleans_up(index, world, embedder)
    assert answers(index, embedder) == killed  # the next build of that corpus: the same index
