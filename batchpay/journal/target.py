"""Where a journal lives: a SQLite file (a ``Path``) or a PostgreSQL server (:class:`PostgresURL`).

A PostgreSQL connection string may carry a password: :class:`PostgresURL` prints, formats
and reprs without it, so no message, log line or report can show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


def is_postgres(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL journal."""
    return text.strip().lower().startswith(SCHEMES)


def redact_url(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "postgresql://…"


@dataclass(frozen=True)
class PostgresURL:
    """A PostgreSQL journal's connection string; its password never shows."""

    _url: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def reveal(self) -> str:
        """The connection string to connect with (password included)."""
        return self._url

    def __str__(self) -> str:
        return redact_url(self._url)

    def __repr__(self) -> str:
        return f"PostgresURL({redact_url(self._url)!r})"


JournalTarget = Path | PostgresURL
