"""A payout is sent as the journal stored it: the stored text's bytes, not a re-encoding.

``AntonClient.create_payout_text`` sends the journal's text (``dumps_body``) as it is. That
is only right if those are the very bytes ``create_payout`` sends of the body the text
parses to — the same bytes on the first send and on every resend after a crash.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.client import wire
from batchpay.journal import dumps_body
from batchpay.submit import payout_body

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
rows = st.fixed_dictionaries(
    {
        "amount": st.decimals(min_value=0, max_value=10**9, places=2).map(str),
        "currency": st.sampled_from(["EUR", "GBP", "USD", "JPY"]),
        "payment_method": st.sampled_from(["iban", "sort_code", "ach"]),
        "reference": text,
        "description": text,
        "purpose": st.sampled_from(["", "contractor_payment", "refund"]),
        "source_currency": st.sampled_from(["", "EUR", "USD"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(row=rows, ben=text, ins=text, key=text)
def test_the_stored_text_is_what_create_payout_would_send(
    row: dict[str, str], ben: str, ins: str, key: str
) -> None:
    try:
        body = payout_body(row, beneficiary_id=ben, instrument_id=ins, idempotency_key=key)
    except (KeyError, ValueError):
        return  # a row the planner refuses: never stored
    stored = dumps_body(body)
    assert wire.encode_json(json.loads(stored)) == stored.encode("utf-8")


@pytest.mark.anyio
async def test_create_payout_text_sends_the_stored_bytes() -> None:
    from batchpay.client import AntonClient, ApiKey

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "pay_1", "status": "created"})

    stored = dumps_body({"reference": "Zoë ✓", "metadata": {"k": "v"}, "dest_amount": "1.50"})
    async with AntonClient(
        "http://x.test", ApiKey("sk_test_x"), transport=httpx.MockTransport(answer)
    ) as client:
        result: Any = await client.create_payout_text(stored, "bp1-key-1")
    assert result.data["id"] == "pay_1"
    (request,) = seen
    assert request.content == stored.encode("utf-8")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "bp1-key-1"


@settings(max_examples=500, deadline=None)
@given(key=st.text(max_size=300))
def test_an_idempotency_key_is_printable_ascii_without_whitespace(key: str) -> None:
    # The rule, said the long way: 1..255 characters, each printable ASCII and no space.
    ok = 0 < len(key) <= 255 and all(32 < ord(ch) < 127 for ch in key)
    if ok:
        wire.check_idempotency_key(key)
    else:
        with pytest.raises(ValueError, match="idempotency key"):
            wire.check_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "a b", "a\tb", "a\nb", "é", "a\x7fb", "a\u00a0b", "k" * 256])
def test_these_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        wire.check_idempotency_key(key)


class _Body:
    def __init__(self, content: bytes) -> None:
        self.content = content
        self.headers: dict[str, str] = {}


def _loads(content: bytes) -> Any:
    """What an answer's body reads as: ``json.loads`` with exact decimals, or not JSON."""
    if not content:
        return None
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return wire.NOT_JSON


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text
    | st.decimals(allow_nan=False, allow_infinity=False).map(str).map(Decimal),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300)
@given(
    value=json_values,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]),
)
def test_an_answer_reads_as_json_loads_reads_it(value: Any, encoding: str) -> None:
    """One decoder for every answer reads each body as ``json.loads(parse_float=Decimal)``
    does: any encoding JSON allows (a byte-order mark too), numbers as exact decimals."""
    content = json.dumps(value, ensure_ascii=False, default=str).encode(encoding)
    assert wire.decode_json(_Body(content)) == _loads(content)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\xff\xfe\xfa", b'{"a": 1} x', b"NaN", b"\xef\xbb\xbf{}", b'"\xed\xa0\x80"',
     b"<html>bad gateway</html>", b'{"amount": 12.30}', b"1e400"],
)  # fmt: skip
def test_odd_bodies_read_as_json_loads_reads_them(content: bytes) -> None:
    assert repr(wire.decode_json(_Body(content))) == repr(_loads(content))  # (NaN != NaN)
