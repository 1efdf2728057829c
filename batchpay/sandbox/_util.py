"""Small shared helpers: ids, timestamps, canonical JSON, opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import UTC, datetime
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str, at: float) -> str:
    """A ULID-shaped id (48-bit ms time + 80 random bits) behind ``prefix_``."""
    value = (int(at * 1000) & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp at whole-second precision (``2026-04-15T14:30:00Z``)."""
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) to Unix seconds; ValueError if not one."""
    if "T" not in text and "t" not in text:
        raise ValueError("not an RFC 3339 date-time")
    value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("an RFC 3339 date-time needs a timezone")
    return value.astimezone(UTC).timestamp()


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, the form every response body and webhook is sent in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


MAX_JSON_DEPTH = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: strict UTF-8, no NaN, no lone surrogate, nested at most 64 deep.

    ValueError, with a message fit for the client, for anything else. The depth bound
    lets every later step (fingerprint, validation, storage) walk the value safely.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request body is not valid UTF-8") from None
    too_deep = ValueError(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError:
        raise ValueError("request body is not valid JSON") from None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise too_deep
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("request body has an unpaired \\u surrogate escape") from None
    return value


def canonical(value: Any) -> str:
    """Key-sorted compact JSON, used to compare request bodies for idempotency."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def encode_cursor(seq: int, scope: str) -> str:
    """Opaque cursor: where the next page starts and which list it belongs to."""
    raw = json.dumps({"s": seq, "l": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> int:
    """The position a cursor points at; ValueError when it is not one of ours for this list."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(data, dict) or data.get("l") != scope or not isinstance(data.get("s"), int):
        raise ValueError("cursor does not belong to this list")
    seq: int = data["s"]
    return seq
