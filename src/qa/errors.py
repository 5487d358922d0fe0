"""Errors a user can cause, each with a one-line message and a hint."""

from __future__ import annotations

import logging
import shlex

REBUILD_HINT = "run `qa build` to rebuild the index"  # for an index that is damaged or incomplete
NOTE = 25  # logging level of notes (between INFO and WARNING): no error, but worth saying


def name_log_levels() -> None:
    """Lower-case level names ("info:", "warning:", "note:") in this process's log lines, as
    `qa`'s own messages print them (`qa serve`'s worker processes call it too, so uvicorn's
    lines read alike in every process)."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        logging.addLevelName(level, logging.getLevelName(level).lower())
    logging.addLevelName(NOTE, "note")


class QAError(Exception):
    """An error the user can fix: shown as one line plus a hint, never as a traceback.

    Args:
        message: what went wrong, in one line.
        hint: what to do about it.
        exit_code: process exit status for the CLI (2 = usage error).
    """

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


def install_hint(extra: str) -> str:
    """The hint for a missing optional extra (api, postgres, ray): the command that installs it
    into the Python running qa, from the checkout qa runs from (qa is not on PyPI)."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # src/qa/errors.py -> the checkout
    where = f"{root}[{extra}]" if (root / "pyproject.toml").is_file() else f".[{extra}]"
    return (f"install the extra `{extra}`: `{shlex.quote(sys.executable)} -m pip install -e "
            f"{shlex.quote(where)}`")


def as_qa_error(exc: QAError | OSError) -> QAError:
    """`exc` as the one-line error a user sees: an OSError (a file or folder `qa` cannot read
    or write) names the file."""
    if isinstance(exc, QAError):
        return exc
    where = f" {exc.filename}" if exc.filename else ""
    return QAError(f"cannot access{where}: {exc.strerror or exc}",
                   "check the path, its permissions and free disk space")  # fmt: skip


class UsageError(QAError):
    """A bad invocation or input (exit status 2)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, exit_code=2)


class IndexMissingError(QAError):
    """No index where one was expected."""


class IndexCorruptError(QAError):
    """Index files fail their checksums or cannot be parsed."""
