"""A payout is sent as the journal stored it: the stored text's bytes, not a re-encoding.

``AntonClient.create_payout_text`` sends the journal's text (``dumps_body``) as it is. That
is only right if those are the very bytes ``create_payout`` sends of the body the text
parses to — the same bytes on the first send and on every resend after a crash.
"""

from __future__ import annotations

import json
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
