"""Index locations in PostgreSQL: a libpq URL plus the name of one index in that database.

    postgresql://user:password@host:5432/db                 the index named "default"
    postgresql://user:password@host:5432/db?index=manuals   the index named "manuals"

`index=` is qa's own parameter (libpq would refuse it), taken out before connecting; every
other parameter goes to libpq as it is (sslmode, host=/a/socket/dir, connect_timeout...). The
password never leaves this module except towards libpq: `Location.shown` is the URL without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qa.errors import UsageError

DEFAULT_NAME = "default"
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # becomes part of schema names (63 bytes at most)
_SECRET_PARAMS = ("password", "sslpassword")
_USERINFO_SECRET = re.compile(r"(://[^:/?#@]*):[^@/?#]*@")


@dataclass(frozen=True)
class Location:
    """A parsed index location.

    Attributes:
        name: the index's name in the database.
        shown: the URL for messages, logs and pages: no password, with the index name.
        conninfo: what libpq connects with (holds the password; never shown: not in repr).
    """

    name: str
    shown: str
    conninfo: str = field(repr=False)


def parse(url: str) -> Location:
    """Split a postgresql:// or postgres:// URL into connection and index name.

    Raises:
        UsageError: a malformed URL or index name (the message never holds the password).
    """
    try:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise UsageError(
            f"malformed PostgreSQL URL {redact(url)}",
            "write it as postgresql://user:password@host:5432/database?index=NAME",
        ) from None
    names = [v for k, v in params if k == "index"]
    name = names[-1] if names else DEFAULT_NAME
    if not NAME.fullmatch(name):
        raise UsageError(
            f"invalid index name {name!r} in {redact(url)}",
            "an index name is 1-32 lower-case letters, digits or _, starting with a letter",
        )
    rest = [(k, v) for k, v in params if k != "index"]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest, safe="/")))
    shown_params = [(k, v) for k, v in rest if k not in _SECRET_PARAMS]
    if name != DEFAULT_NAME:
        shown_params.append(("index", name))
    netloc = parts.netloc.rpartition("@")
    host = netloc[2]
    user = netloc[0].partition(":")[0]
    shown_netloc = f"{user}@{host}" if netloc[1] else host
    shown = urlunsplit(parts._replace(netloc=shown_netloc, query=urlencode(shown_params, safe="/"),
                                      fragment=""))  # fmt: skip
    return Location(name, shown, conninfo)


def redact(text: str) -> str:
    """`text` with any URL password (user:password@) replaced by `***`."""
    text = _USERINFO_SECRET.sub(r"\1:***@", text)
    return re.sub(r"((?:ssl)?password=)[^&\s]*", r"\1***", text)
