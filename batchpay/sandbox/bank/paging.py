"""Paging over the books: the request, the cursor query, and the list endpoints' parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._util import decode_cursor, encode_cursor
from ..problems import ApiProblem, invalid_parameter
from ..store import Store, load


@dataclass(frozen=True, slots=True)
class Page:
    """Paging request: how many items and where to start."""

    limit: int
    cursor: str | None


def page_of(
    store: Store,
    table: str,
    scope: str,
    where: list[str],
    params: list[Any],
    page: Page,
) -> dict[str, Any]:
    """One page of ``table``'s docs, newest first, with ``has_more`` and ``next_cursor``."""
    conditions = list(where)
    args = list(params)
    if page.cursor is not None:
        try:
            start = decode_cursor(page.cursor, scope)
        except ValueError as exc:
            raise ApiProblem(400, "invalid_cursor", str(exc)) from exc
        conditions.append("seq < ?")
        args.append(start)
    sql = f"SELECT seq, doc FROM {table}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY seq DESC LIMIT ?"
    args.append(page.limit + 1)
    rows = store.all(sql, args)
    items = rows[: page.limit]
    result: dict[str, Any] = {
        "data": [load(r["doc"]) for r in items],
        "has_more": len(rows) > page.limit,
    }
    if result["has_more"]:
        result["next_cursor"] = encode_cursor(int(items[-1]["seq"]), scope)
    return result


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
