"""No output, log line, traceback or page carries a PostgreSQL password, whatever characters it
holds (property tests over passwords: printable ASCII, "@ # / ? : %" and Unicode)."""

from __future__ import annotations

import logging
import socket
import traceback
from urllib.parse import unquote

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from qa.cli import main

APP = str(ROOT / "app.py")
# Every piece of a password lies between two of these marks, which nothing else prints: a
# message that shows any part of a password (what follows an "@" in it, say) shows a mark.
MARKS = ("Kq7", "Wx4", "Jz9")
SPECIALS = "@#/?:%&=+ $;'\"\\`[]{}<>!*~"
PIECE = st.text(st.one_of(st.sampled_from(SPECIALS),
                          st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs"))),
                max_size=8)  # fmt: skip


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@st.composite
def passwords(draw) -> str:
    return MARKS[0] + draw(PIECE) + MARKS[1] + draw(PIECE) + MARKS[2]


def leaks(text: str, password: str) -> bool:
    return password in text or any(mark in text for mark in MARKS)


def logged(caplog) -> str:
    """Every log line of the run, with its traceback when it carried one."""
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hosts(port: int) -> st.SearchStrategy[tuple[str, str]]:
    """(host part of a URL, the error it must give): a server that is not there, or a URL
    malformed after the password."""
    return st.sampled_from([(f"127.0.0.1:{port}/db", f"cannot reach PostgreSQL at "
                             f"postgresql://qa@127.0.0.1:{port}/db"),
                            ("127.0.0.1:notaport/db", "malformed PostgreSQL URL "
                             "postgresql://qa@127.0.0.1:notaport/db"),
                            ("[::1/db", "malformed PostgreSQL URL postgresql://qa@[::1/db"),
                            ("127.0.0.1/db?index=Bad", "invalid index name 'Bad'")])  # fmt: skip


COMMANDS = [["info", "--index"], ["info", "--verify", "--index"], ["ask", "back pain", "--index"],
            ["build", "--corpus", str(ROOT / "corpus"), "-q", "--index"]]  # fmt: skip


@examples(80)
@given(data=st.data(), password=passwords(), command=st.sampled_from(COMMANDS),
       debug=st.booleans())  # fmt: skip
def test_no_cli_output_log_or_traceback_holds_the_password(capsys, caplog, closed_port, data,
                                                           password, command, debug):  # fmt: skip
    host, error = data.draw(hosts(closed_port))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    trace = ""
    try:  # --debug shows the traceback: main raises it
        status = main([*command, f"postgresql://qa:{password}@{host}"] + ["--debug"] * debug)
    except Exception:  # noqa: BLE001 - what --debug prints
        status, trace = None, traceback.format_exc()
    out = capsys.readouterr()
    assert status in (1, 2, None)
    assert error in out.err + trace
    for text in (out.out, out.err, trace, logged(caplog)):
        assert not leaks(text, password), text


@examples(15)
@given(data=st.data(), password=passwords())
def test_the_page_never_shows_the_password(monkeypatch, caplog, closed_port, data, password):
    from test_app import page_text

    host, error = data.draw(hosts(closed_port))
    monkeypatch.setenv("QA_INDEX", f"postgresql://qa:{password}@{host}")
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception  # an uncaught error would put its traceback in the server's log
    shown = [page_text(e.value) for kind in ("title", "markdown", "caption", "error", "warning",
                                             "info", "success") for e in getattr(at, kind)]
    assert any(line.startswith(error) for line in shown), shown
    for text in (*shown, logged(caplog)):
        assert not leaks(text, password), text


@examples(12)
@given(password=passwords())
def test_any_password_logs_in_and_is_never_shown(pg_tcp, capsys, caplog, password):
    """The password reaches the server as written (escapes "%XX" decoded, as in any URL), so a
    password with "@", "#", "/" or "?" logs in: the error is that no index is there yet."""
    pg_tcp.set_password("prop", unquote(password))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    assert main(["info", "--index", f"postgresql://prop:{password}@127.0.0.1:{pg_tcp.port}/prop"]) \
        == 1  # fmt: skip
    out = capsys.readouterr()
    assert f"no index at postgresql://prop@127.0.0.1:{pg_tcp.port}/prop" in out.err, out.err
    for text in (out.out, out.err, logged(caplog)):
        assert not leaks(text, password), text
