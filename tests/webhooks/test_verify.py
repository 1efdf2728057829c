"""verify(): the signing scheme of webhook-signing.mdx, and every way a delivery is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchpay.config import Secret
from batchpay.sandbox.webhooks import sign
from batchpay.webhooks import WebhookEvent, WebhookRejected, verify

from .helpers import NEW_SECRET, NOW, OTHER_SECRET, SECRET, delivery, envelope


def _reason(
    body: bytes, headers: dict[str, str], secrets: list[str] | None = None, now: float = NOW
) -> str:
    with pytest.raises(WebhookRejected) as info:
        verify(body, headers, secrets or [SECRET], now=now)
    return info.value.reason


def test_valid_delivery_returns_the_event() -> None:
    """A correctly signed, fresh delivery yields the envelope and the signed timestamp."""
    body, headers = delivery(envelope(status="sent", event_id="evt_42"))
    event = verify(body, headers, [Secret(SECRET)], now=NOW)
    assert event == WebhookEvent(
        id="evt_42",
        type="payout.sent",
        created_at="2026-04-15T14:45:12Z",
        data={"id": "pay_known0001", "status": "sent"},
        timestamp=NOW,
    )


def test_headers_are_case_insensitive() -> None:
    """Header names in any case are found (frameworks normalise them differently)."""
    body, headers = delivery(envelope())
    lowered = {k.lower(): v for k, v in headers.items()}
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify(body, lowered, [SECRET], now=NOW).id == "evt_0001"
    assert verify(body, upper, [SECRET], now=NOW).id == "evt_0001"


def test_wrong_secret_is_a_forgery() -> None:
    """A delivery signed with a secret we do not hold is refused as bad_signature."""
    body, headers = delivery(envelope(), [OTHER_SECRET])
    assert _reason(body, headers) == "bad_signature"


def test_tampered_body_is_refused() -> None:
    """Changing the body after signing (a status, or one trailing newline) breaks it."""
    body, headers = delivery(envelope(status="failed"))
    assert _reason(body.replace(b'"failed"', b'"completed"'), headers) == "bad_signature"
    assert _reason(body + b"\n", headers) == "bad_signature"


def test_tampered_timestamp_is_refused() -> None:
    """The timestamp is signed: moving it (even within the window) breaks the signature."""
    body, headers = delivery(envelope())
    headers["X-Webhook-Timestamp"] = str(NOW + 1)
    assert _reason(body, headers) == "bad_signature"


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_stale_or_future_timestamp_is_refused(offset: int) -> None:
    """More than 300 s from now, in either direction, is refused even when signed."""
    body, headers = delivery(envelope(), timestamp=NOW + offset)
    assert _reason(body, headers) == "stale_timestamp"


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_five_minutes_is_accepted(offset: int) -> None:
    """Exactly 300 s away is still inside the window."""
    body, headers = delivery(envelope(), timestamp=NOW + offset)
    assert verify(body, headers, [SECRET], now=NOW).timestamp == NOW + offset


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("X-Webhook-Signature", "missing_signature"),
        ("X-Webhook-Timestamp", "missing_timestamp"),
        ("X-Webhook-ID", "missing_event_id"),
    ],
)
def test_missing_header_is_refused(header: str, reason: str) -> None:
    """Each required header, absent or blank, has its own reason."""
    body, headers = delivery(envelope())
    assert _reason(body, {k: v for k, v in headers.items() if k != header}) == reason
    assert _reason(body, {**headers, header: "  "}) == reason


@pytest.mark.parametrize("value", ["12a", "-1760000000", "+1760000000", "1.76e9", "١٧٦"])
def test_timestamp_that_is_not_unix_seconds_is_refused(value: str) -> None:
    """Only ASCII digits are a timestamp (no signs, exponents or other scripts' digits)."""
    body, headers = delivery(envelope())
    assert _reason(body, {**headers, "X-Webhook-Timestamp": value}) == "bad_timestamp"


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "v1=",
        "v1=xyz",
        "v1=" + "g" * 64,
        "v1=" + "ab" * 31,
        "v1=" + "ab" * 33,
        "v0=" + "ab" * 32,
        ",,,",
        "v1=" + "ab" * 32 + "==",
    ],
)
def test_garbage_signature_entries_are_refused(value: str) -> None:
    """A header with no well-formed v1= entry is malformed_signature, not an exception."""
    body, headers = delivery(envelope())
    assert _reason(body, {**headers, "X-Webhook-Signature": value}) == "malformed_signature"


def test_well_formed_but_wrong_signature_is_bad_signature() -> None:
    """A v1= entry of 64 hex digits that does not match is bad_signature."""
    body, headers = delivery(envelope())
    assert _reason(body, {**headers, "X-Webhook-Signature": "v1=" + "0" * 64}) == "bad_signature"


def test_too_many_entries_are_refused() -> None:
    """A flood of entries (the documented maximum is two) is refused before any HMAC work."""
    body, headers = delivery(envelope())
    flood = ",".join(["v1=" + "0" * 64] * 17 + [headers["X-Webhook-Signature"]])
    assert _reason(body, {**headers, "X-Webhook-Signature": flood}) == "malformed_signature"


def test_garbage_entry_beside_a_valid_one_is_accepted() -> None:
    """Any matching entry is enough; unparseable neighbours are skipped."""
    body, headers = delivery(envelope())
    mixed = "v1=nothex, v0=abc ," + headers["X-Webhook-Signature"]
    assert verify(body, {**headers, "X-Webhook-Signature": mixed}, [SECRET], now=NOW)


def test_rotation_two_entries_second_matches() -> None:
    """During the provider's grace window the header has two entries; the second may match."""
    body, headers = delivery(envelope(), [OTHER_SECRET, SECRET])
    assert headers["X-Webhook-Signature"].count("v1=") == 2
    assert verify(body, headers, [SECRET], now=NOW).id == "evt_0001"


def test_rotation_we_hold_two_secrets() -> None:
    """Holding old and new secrets, a delivery signed with either one is accepted."""
    for signer in (SECRET, NEW_SECRET):
        body, headers = delivery(envelope(), [signer])
        assert verify(body, headers, [SECRET, Secret(NEW_SECRET)], now=NOW).id == "evt_0001"
    body, headers = delivery(envelope(), [OTHER_SECRET])
    assert _reason(body, headers, [SECRET, NEW_SECRET]) == "bad_signature"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "evt_0001", "type": "payout.sent", "created_at": "x"}',
        b'{"id": "evt_0001", "type": "payout.sent", "created_at": "x", "data": []}',
        b'{"id": 7, "type": "payout.sent", "created_at": "x", "data": {}}',
        b'{"id": "evt_0001", "type": "", "created_at": "x", "data": {}}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe\x00garbage",
    ],
)
def test_signed_body_that_is_not_the_envelope_is_refused(body: bytes) -> None:
    """A correctly signed body that is not {id, type, created_at, data} is bad_body."""
    _, headers = delivery(envelope())
    headers["X-Webhook-Signature"] = "v1=" + sign(SECRET, NOW, body)
    assert _reason(body, headers) == "bad_body"


def test_header_id_must_be_the_signed_envelope_id() -> None:
    """X-Webhook-ID is not signed, so it must equal the envelope id (dedupe relies on it)."""
    body, headers = delivery(envelope(event_id="evt_real"), X_Webhook_ID="evt_other")
    assert _reason(body, headers) == "id_mismatch"


def test_header_event_type_must_match_the_envelope() -> None:
    """An X-Webhook-Event that disagrees with the signed type is refused."""
    body, headers = delivery(envelope(status="failed"), X_Webhook_Event="payout.completed")
    assert _reason(body, headers) == "event_mismatch"


def test_rejection_never_shows_the_secret_or_signature() -> None:
    """Neither the secret nor any signature appears in the error's message or hint."""
    body, headers = delivery(envelope(), [OTHER_SECRET])
    with pytest.raises(WebhookRejected) as info:
        verify(body, headers, [SECRET], now=NOW)
    text = f"{info.value} {info.value.hint} {info.value!r}"
    signature = headers["X-Webhook-Signature"].removeprefix("v1=")
    for secret in (SECRET, OTHER_SECRET, signature, signature[:16], SECRET[6:22]):
        assert secret not in text


def test_no_secret_is_a_programming_error() -> None:
    """Verifying with no secret at all is refused outright, never silently accepted."""
    body, headers = delivery(envelope())
    with pytest.raises(ValueError, match="at least one"):
        verify(body, headers, [], now=NOW)


@given(
    data=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5),
    timestamp=st.integers(min_value=0, max_value=10**12),
)
def test_any_signed_envelope_verifies(data: dict[str, str], timestamp: int) -> None:
    """Whatever the payload and timestamp, the sandbox's signature verifies here."""
    event = {"id": "evt_h", "type": "payout.sent", "created_at": "t", "data": data}
    body, headers = delivery(event, timestamp=timestamp)
    assert verify(body, headers, [SECRET], now=timestamp).data == data


@given(index=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_byte_is_caught(index: int, flip: int) -> None:
    """Flipping any bits of any one body byte makes the delivery fail verification."""
    body, headers = delivery(envelope(reason="x" * 40))
    i = index % len(body)
    forged = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    with pytest.raises(WebhookRejected):
        verify(forged, headers, [SECRET], now=NOW)


def test_verify_reads_json_as_sent() -> None:
    """Verification is over the raw bytes: re-serialised JSON (other spacing) fails."""
    body, headers = delivery(envelope())
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialised != body
    assert _reason(reserialised, headers) == "bad_signature"
