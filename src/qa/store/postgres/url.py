"""Index locations in PostgreSQL: a libpq URL plus the name of one index in that database.

    postgresql://user:password@host:5432/db                 the index named "default"
    postgresql://user:password@host:5432/db?index=manuals   the index named "manuals"

`index=` is qa's own parameter (libpq would refuse it), taken out before connecting; every
other parameter goes to libpq as it is (sslmode, host=/a/socket/dir, connect_timeout...). The
password never leaves this module except towards libpq: `Location.shown` is the URL without it,
and error messages show only what `shown` would (whatever characters the password holds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from qa.errors import UsageError

DEFAULT_NAME = "default"
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # becomes part of schema names (63 bytes at most)
_SECRET_PARAMS = ("password", "sslpassword")
_USERINFO_SECRET = re.compile(r"(://[^:/?#@\s]*):.*@", re.DOTALL)  # to the last "@"


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

    The user name and password are everything between "://" and the last "@", so a password
    may hold any character ("@", "#", "/", "?", ":" and "%" too; "%" followed by two hex digits
    is read as an escape, as URLs have it). libpq gets them percent-encoded, so it reads them as
    they are read here; "@" in a parameter must therefore be written "%40".

    Raises:
        UsageError: a malformed URL or index name (the message never holds the password).
    """
    scheme, _, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    safe = _without_secrets(f"{scheme}://{user}{at}{hostpart}")  # all a message may show
    try:
        parts = urlsplit(f"{scheme}://{hostpart}")
        params = parse_qsl(parts.query, keep_blank_values=True)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise UsageError(
            f"malformed PostgreSQL URL {safe}",
            "write it as postgresql://user:password@host:5432/database?index=NAME",
        ) from None
    names = [v for k, v in params if k == "index"]
    name = names[-1] if names else DEFAULT_NAME
    if not NAME.fullmatch(name):
        raise UsageError(
            f"invalid index name {name!r} in {safe}",
            "an index name is 1-32 lower-case letters, digits or _, starting with a letter",
        )
    rest_params = [(k, v) for k, v in params if k != "index"]
    login = _encoded(user) + (":" + _encoded(password) if colon else "") + at
    conninfo = urlunsplit(parts._replace(netloc=login + parts.netloc, fragment="",
                                         query=urlencode(rest_params, safe="/")))  # fmt: skip
    shown_params = [(k, v) for k, v in rest_params if k not in _SECRET_PARAMS]
    if name != DEFAULT_NAME:
        shown_params.append(("index", name))
    shown = urlunsplit(parts._replace(netloc=user + at + parts.netloc, fragment="",
                                      query=urlencode(shown_params, safe="/")))  # fmt: skip
    return Location(name, shown, conninfo)


def _encoded(part: str) -> str:
    """A user name or password percent-encoded for libpq (escapes already in it kept)."""
    return quote(unquote(part), safe="")


def _without_secrets(url: str) -> str:
    return re.sub(r"((?:ssl)?password=)[^&]*", r"\1***", url)


def redact(text: str) -> str:
    """`text` (an error message, say) with whatever could be a URL password replaced by `***`:
    after a URL's user name, everything up to the last "@" in the text, and password= values."""
    text = _USERINFO_SECRET.sub(r"\1:***@", text)
    return re.sub(r"((?:ssl)?password=)[^&\s]*", r"\1***", text)
