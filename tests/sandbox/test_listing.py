"""List pages: rendered from the stored text, the same bytes as encoding them afresh; time
windows found through their own rows, with the same answers as a walk over every payout."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.sandbox import Sandbox, SandboxConfig
from batchpay.sandbox._util import dumps
from batchpay.sandbox.bank.paging import Listing
from batchpay.sandbox.store import store_doc

from .helpers import payout, post

# Text of every kind the books may hold: non-ASCII, control characters, DEL, quotes,
# backslashes, a literal backslash-u, surrogates' neighbours.
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', "\\", "\x7f", "\x00", "\n", "\u2028", "é", "€", "𝄞"]),
    ),
    max_size=12,
) | st.sampled_from(["\\u0041", "plain", ""])
_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), _TEXT,
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_DOC = st.dictionaries(_TEXT, _VALUE, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    docs=st.lists(_DOC, max_size=5),
    has_more=st.booleans(),
    cursor=st.none() | st.text(max_size=8),
)
def test_a_page_renders_the_same_bytes_as_encoding_it_afresh(
    docs: list[dict[str, Any]], has_more: bool, cursor: str | None
) -> None:
    listing = Listing([store_doc(d) for d in docs], has_more, cursor)
    assert listing.body() == dumps(listing.to_dict())
    assert listing.to_dict()["data"] == docs


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A manual clock, and no rate limit: the windows are read many times over."""
    return SandboxConfig(manual_clock=True, rate_limit_per_minute=None)


def _second(created_at: str) -> int:
    return int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())


async def _read_all(client: httpx.AsyncClient, params: dict[str, str]) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        q = {**params, "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/payouts", params=q)).json()
        ids += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            return ids
        cursor = page["next_cursor"]


@pytest.mark.anyio
async def test_time_windows_answer_as_a_walk_over_every_payout_would(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    # Payouts at fractional instants over several seconds, several in most seconds.
    made: list[dict[str, Any]] = []
    for step in [0.0, 0.3, 0.3, 0.5, 0.1, 1.7, 0.2, 0.9, 0.05, 2.4, 0.3, 0.3, 0.6]:
        await sandbox.advance(step)
        made.append((await post(client, "/v1/payouts", payout(*payee))).json())
    seconds = sorted({_second(p["created_at"]) for p in made})
    newest_first = list(reversed(made))

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")

    bounds: list[float | None] = [None]
    for s in [seconds[0] - 1, *seconds, seconds[-1] + 1]:
        bounds += [float(s), s + 0.5, s + 0.999999]
    checked = 0
    for lo in bounds:
        for hi in bounds:
            if lo is not None and hi is not None and lo > hi:
                continue  # refused (400), as another test shows
            params = {}
            if lo is not None:
                params["created_after"] = iso(lo)
            if hi is not None:
                params["created_before"] = iso(hi)
            expected = [
                p["id"] for p in newest_first
                if (lo is None or _second(p["created_at"]) >= math.floor(lo))
                and (hi is None or _second(p["created_at"]) <= math.floor(hi))
            ]  # fmt: skip
            assert await _read_all(client, params) == expected, params
            checked += 1
    assert checked > 100
