"""Paging over the books: the request, the cursor query, and the list endpoints' parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._util import decode_cursor, dumps, encode_cursor
from ..problems import ApiProblem, invalid_parameter
from ..store import Store, load


@dataclass(frozen=True, slots=True)
class Page:
    """Paging request: how many items and where to start."""

    limit: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a list endpoint: its items as stored (JSON text), newest first."""

    docs: list[str]
    has_more: bool
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The page as the API's JSON object."""
        result: dict[str, Any] = {"data": [load(d) for d in self.docs], "has_more": self.has_more}
        if self.next_cursor is not None:
            result["next_cursor"] = self.next_cursor
        return result

    def body(self) -> bytes:
        """``dumps(self.to_dict())``, the same bytes, without decoding every stored item
        to encode it again: an item stored without ``\\u`` escapes is already in the
        answer's compact form (the store and the answers share separators and key order;
        only non-ASCII text is written differently, escaped in storage, raw in answers)."""
        items = ",".join(d if "\\u" not in d else dumps(load(d)).decode() for d in self.docs)
        more = "true" if self.has_more else "false"
        tail = (
            ""
            if self.next_cursor is None
            else ',"next_cursor":' + json.dumps(self.next_cursor, ensure_ascii=False)
        )
        return f'{{"data":[{items}],"has_more":{more}{tail}}}'.encode()


def page_of(
    store: Store,
    table: str,
    scope: str,
    where: list[str],
    params: list[Any],
    page: Page,
    *,
    created: tuple[float | None, float | None] = (None, None),
) -> Listing:
    """One page of ``table``'s docs, newest first, with ``has_more`` and ``next_cursor``.

    ``created``: the ``created_after`` / ``created_before`` filters (Unix seconds), compared
    at the whole second the API shows (a payout made at 12:00:05.7 is made at 12:00:05).
    A window bounded on both sides finds its rows through ``(created_ts, seq)`` first, so
    a window far back in time costs its own rows, not a walk over every newer one.
    """
    conditions = list(where)
    args = list(params)
    after, before = created
    # floor(created_ts) >= a  <=>  created_ts >= a;  floor(created_ts) <= b  <=>  < b + 1
    # (a and b whole seconds, as the filters compare; the books start after 1970).
    if after is not None:
        conditions.append("created_ts >= ?")
        args.append(int(after))
    if before is not None:
        conditions.append("created_ts < ?")
        args.append(int(before) + 1)
    if page.cursor is not None:
        try:
            start = decode_cursor(page.cursor, scope)
        except ValueError as exc:
            raise ApiProblem(400, "invalid_cursor", str(exc)) from exc
        conditions.append("seq < ?")
        args.append(start)
    filters = " WHERE " + " AND ".join(conditions) if conditions else ""
    if before is not None:
        sql = (
            f"SELECT seq, doc FROM {table} WHERE seq IN (SELECT seq FROM {table}{filters}"
            " ORDER BY seq DESC LIMIT ?) ORDER BY seq DESC"
        )
    else:
        sql = f"SELECT seq, doc FROM {table}{filters} ORDER BY seq DESC LIMIT ?"
    args.append(page.limit + 1)
    rows = store.all(sql, args)
    items = rows[: page.limit]
    has_more = len(rows) > page.limit
    cursor = encode_cursor(int(items[-1]["seq"]), scope) if has_more else None
    return Listing([str(r["doc"]) for r in items], has_more, cursor)


def parse_limit(raw: str | None, *, strict: bool) -> int:
    """``limit``: strict endpoints answer 400 ``invalid_limit``; older ones cap silently."""
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        if strict:
            raise ApiProblem(
                400, "invalid_limit", "limit must be an integer from 1 to 100"
            ) from None
        return 20
    if strict and not 1 <= value <= 100:
        raise ApiProblem(400, "invalid_limit", "limit must be an integer from 1 to 100")
    if value < 1:
        return 20
    return min(value, 100)


def check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of ``allowed``."""
    if value is not None and value not in allowed:
        raise invalid_parameter(name, f"must be one of {', '.join(allowed)}")
    return value
