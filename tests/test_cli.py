"""The `qa` command line, in-process through `qa.cli.main` and once as a real subprocess."""

import json
import os
import subprocess
import sys

import pytest

from qa import config
from qa.cli import main
from qa.embed import models, weights
from qa.retrieve import answered

HIT_KEYS = {
    "rank",
    "score",
    "doc",
    "title",
    "section",
    "page",
    "start",
    "end",
    "source_start",
    "source_end",
    "text",
}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prints_summary(capsys, report_corpus, tmp_path):
    code, out, err = run(capsys, "build", "--corpus", str(report_corpus), "--index", str(tmp_path))
    assert code == 0
    assert out.startswith("Indexed 1 document, 12 chunks in ")
    assert (tmp_path / "current" / "manifest.json").is_file()
    code, out, _ = run(capsys, "build", "--corpus", str(report_corpus), "--index", str(tmp_path))
    assert "(0 embedded, 12 reused)" in out  # nothing changed: nothing re-embedded


def test_ask_json_shape(capsys, report_index, report_corpus):
    code, out, err = run(
        capsys,
        "ask",
        "What causes chronic mid back pain?",
        "--index",
        str(report_index),
        "-k",
        "3",
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["question"] == "What causes chronic mid back pain?"
    assert len(payload["hits"]) == 3
    text = (report_corpus / "chronic-middle-back-pain.txt").read_text(encoding="utf-8")
    for rank, hit in enumerate(payload["hits"], start=1):
        assert HIT_KEYS <= hit.keys()
        assert hit["rank"] == rank and isinstance(hit["score"], float)
        assert hit["section"] is None or isinstance(hit["section"], str)
        assert text[hit["start"] : hit["end"]] == hit["text"]


def test_ask_plain_output(capsys, report_index):
    code, out, _ = run(capsys, "ask", "chiropractor", "--index", str(report_index), "-k", "2")
    assert code == 0
    assert out.startswith("1. [")
    assert (
        "Chronic middle back pain, Chronic Middle Back Pain Treatments "
        "(chronic-middle-back-pain.txt)"
    ) in out
    assert "\n2. [" in out


def test_ask_stdin_batch_loads_model_once(capsys, monkeypatch, report_index):
    import io

    questions = (
        "What causes chronic mid back pain?\n\nchiropractor\nShould I get a second opinion?\n"
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(questions))
    monkeypatch.setattr(models, "_MODELS", {})  # force a fresh load, then count loads
    before = models.LOADS["count"]
    code, out, err = run(capsys, "ask", "--index", str(report_index), "--json", "-k", "2")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [o["question"] for o in lines] == [
        "What causes chronic mid back pain?",
        "chiropractor",
        "Should I get a second opinion?",
    ]
    assert all(len(o["hits"]) == 2 for o in lines)
    assert models.LOADS["count"] - before == 2  # each model of the pair, once


def test_info(capsys, report_index):
    code, out, _ = run(capsys, "info", "--index", str(report_index), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["documents"] == 1 and info["chunks"] == 12
    assert info["model"] == config.DEFAULT_MODEL and info["dim"] == 768
    assert [m["id"] for m in info["models"]] == config.DEFAULT_MODEL.split(",")
    assert info["weights"] == list(weights.DEFAULT)
    assert info["answered_from"] == answered.threshold()
    assert info["chunking"]["max_tokens"] == 254
    assert info["built_at"]
    code, out, _ = run(capsys, "info", "--index", str(report_index))
    assert "documents:  1, chunks: 12" in out


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["ask", "   "], 2, "the question is empty"),
        (["ask", "x", "-k", "0"], 2, "-k must be between"),
        (["ask", "x", "-k", "many"], 2, "invalid int value"),
        (["frobnicate"], 2, "invalid choice"),
        (["info", "--index", "{missing}"], 1, "no index at"),
        (["ask", "hello", "--index", "{missing}"], 1, "no index at"),
        (["build", "--corpus", "{missing}", "--index", "{missing}"], 1, "no corpus folder"),
    ],
)
def test_user_errors_are_one_line(capsys, tmp_path, argv, code, message):
    argv = [a.replace("{missing}", str(tmp_path / "missing")) for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code
    assert err.startswith("qa: error: ") and message in err
    assert "hint:" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, said", [
    (["ask", "--josn", "x"], "--josn (did you mean --json?) (hint: see `qa ask --help`)"),
    (["--josn", "ask", "x"], "--josn (did you mean --json?) (hint: see `qa ask --help`)"),
    (["info", "--verfy"], "--verfy (did you mean --verify?) (hint: see `qa info --help`)"),
    (["ask", "x", "--zzzzzz"], "--zzzzzz (hint: see `qa ask --help`)"),  # nothing close
])  # fmt: skip
def test_a_mistyped_option_is_named_with_the_closest_one(capsys, argv, said):
    code, _, err = run(capsys, *argv)
    assert (code, err) == (2, f"qa: error: unrecognized arguments: {said}\n")


def test_a_missing_index_hint_builds_that_index(capsys, monkeypatch, tmp_path):
    missing = tmp_path / "my index"
    code, _, err = run(capsys, "ask", "hello", "--index", str(missing))
    assert code == 1
    assert err.endswith(f"(hint: run `qa build --index '{missing}'` to create it)\n")
    monkeypatch.setenv("QA_INDEX", str(missing))  # where a plain `qa build` builds
    code, _, err = run(capsys, "info")
    assert err.endswith("(hint: run `qa build` to create it)\n")


def test_empty_corpus(capsys, tmp_path):
    (tmp_path / "corpus").mkdir()
    code, _, err = run(
        capsys, "build", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "index")
    )
    assert code == 1 and "no documents to index" in err and "Traceback" not in err


def test_environment_defaults(capsys, monkeypatch, report_index):
    monkeypatch.setenv("QA_INDEX", str(report_index))
    code, out, _ = run(capsys, "info", "--json")
    assert code == 0 and json.loads(out)["chunks"] == 12


def test_console_script_subprocess(report_index):
    """The real entry point, in a fresh process, with questions on standard input."""
    env = dict(os.environ, QA_INDEX=str(report_index))
    proc = subprocess.run(
        [sys.executable, "-m", "qa", "ask", "--json", "-k", "1"],
        input="What is knowledge therapy?\nchiropractor\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 2
    assert answers[0]["hits"][0]["text"].startswith("For patients who believe")
    assert proc.stderr == ""


def test_help_does_not_import_torch():
    code = (
        "import sys; from qa.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: qa" in proc.stdout


def test_counts_are_worded_right(capsys, tmp_path, monkeypatch, embedder):
    """'1 document', '1 chunk', '1 page', '1 sentence', '1 file skipped' (issue #15)."""
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text("A single short paragraph about rest.\n")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    code, out, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 0, err
    assert out.startswith("Indexed 1 document, 1 chunk in ") and "; skipped 1: image.png" in out
    code, out, _ = run(capsys, "info", "--index", str(tmp_path / "i"))
    assert "overlap 1 sentence\n" in out and "one.txt  (1 chunk)  One" in out
    assert "documents" not in out.split("documents:", 1)[1].split("\n", 1)[0]


def test_fail_if_not_covered(capsys, report_index):
    base = ["ask", "--index", str(report_index), "-k", "1"]
    code, out, _ = run(capsys, *base, "What is the capital of France?")
    assert code == 0 and out.startswith("The documents do not seem to cover")  # said, exit 0
    code, out, _ = run(capsys, *base, "What is the capital of France?", "--fail-if-not-covered")
    assert code == 3 and out.startswith("The documents do not seem to cover")  # still printed
    code, _, _ = run(capsys, *base, "What causes chronic mid back pain?", "--fail-if-not-covered")
    assert code == 0


def test_help_documents_exit_statuses_and_defaults_as_the_docs_do(capsys):
    """`qa --help` and the docs agree: every environment variable in the help is in the
    configuration table (docs/configuration.md) with the same default, and the help and
    docs/cli.md both list the exit statuses."""
    import re
    from pathlib import Path

    from qa.cli import make_parser

    help_text = make_parser().format_help()
    docs = Path(__file__).resolve().parent.parent / "docs"
    table = (docs / "configuration.md").read_text(encoding="utf-8")
    for name in re.findall(r"^  (QA_[A-Z_]+)", help_text, flags=re.M):
        assert f"`{name}`" in table or f"`{name}=1`" in table, name
    assert "default: 1, measured best" not in help_text
    assert "the free cores" in help_text and "the cores minus the 1-minute load average" in table
    assert "default: 50" in help_text and "| 50 (larger files are skipped" in table
    cli = (docs / "cli.md").read_text(encoding="utf-8")
    exits = cli.split("| exit status | meaning |", 1)[1].split("\n\n", 1)[0]
    for status in ("0", "1", "2", "3", "130"):
        assert f"\n| {status} |" in exits
        assert re.search(rf"^  {status} ", help_text, flags=re.M), status
    ask_help = make_parser()._subparsers._group_actions[0].choices["ask"].format_help()
    assert "--fail-if-not-covered" in ask_help and "exit status: 0 answered" in ask_help
