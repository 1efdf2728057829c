"""Text from a server's answer is bounded and redacted before it is stored or reported."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.errors import (
    MAX_CODE_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_REQUEST_ID_CHARS,
    api_error_from_response,
    server_text,
)
from batchpay.testing import fake_live_key, payout_row, sandbox_settings, write_csv

LIVE_KEY = fake_live_key("SRVECHO")
# Built at run time, so no secret-shaped literal is committed.
SHAPES = {
    "oauth client id": "ant_" + "oc_" + "client0123456789",
    "oauth client secret": "ant_" + "ocs_" + "s3cr3tS3cr3tS3cr3t",
    "webhook secret": "whsec_" + "ab" * 32,
    "jwt": "eyJ" + "hbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxIn0" + "." + "c2lnbmF0dXJl",
    "bearer token": "Bearer " + "tok_" + "Z" * 24,
    "dpop token": "DPoP " + "dpop_" + "Y" * 24,
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_secret_shapes_are_redacted(kind: str) -> None:
    """Every credential shape the provider could echo back is replaced by [redacted]."""
    secret = SHAPES[kind]
    text = server_text(f"rejected because {secret} was sent", 500)
    assert "[redacted]" in text
    assert secret.split()[-1] not in text


def test_api_keys_are_masked_to_kind_and_last_four() -> None:
    """An echoed API key keeps its kind and last four characters only."""
    text = server_text(f"key {LIVE_KEY} refused", 500)
    assert LIVE_KEY not in text and f"ak_live_…{LIVE_KEY[-4:]}" in text


def test_long_and_multi_line_text_is_cut_to_one_bounded_line() -> None:
    """Newlines and terminal escapes become spaces; over-long text is cut and ends with …."""
    text = server_text("line one\nline two\x1b[31m" + "x" * 10_000, 500)
    assert len(text) == 500 and text.endswith("…")
    assert "\n" not in text and "\x1b" not in text


def test_api_error_fields_are_bounded() -> None:
    """Code, message and request id of an error answer are each bounded."""
    err = api_error_from_response(
        422,
        {"error": {"code": "c" * 1000, "message": "m" * 10_000}},
        {"X-Request-ID": "r" * 1000},
    )
    assert len(err.code) == MAX_CODE_CHARS
    assert len(err.message) == MAX_MESSAGE_CHARS
    assert err.request_id is not None and len(err.request_id) == MAX_REQUEST_ID_CHARS


@pytest.mark.anyio
async def test_a_hostile_answer_is_bounded_and_redacted_in_journal_and_report(
    tmp_path: Path,
) -> None:
    """A 422 echoing a key and 10 kB of text: journal and report hold a short, clean line."""
    secret = SHAPES["webhook secret"]

    def hostile(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path in ("/v1/payouts", "/v1/batches"):
            return httpx.Response(200, json={"data": [], "has_more": False})  # the ledger sweep
        return httpx.Response(
            422,
            json={"error": {"code": "refused_" + "x" * 200,
                            "message": f"refused {LIVE_KEY} {secret} " + "A" * 10_000}},
            headers={"X-Request-ID": "req_" + "9" * 1000},
        )  # fmt: skip

    settings = sandbox_settings(tmp_path)
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    result = await pipeline.run_async(
        f,
        settings=settings,
        options=pipeline.RunOptions(out_dir=tmp_path / "reports", skip_balance_check=True),
        transport=httpx.MockTransport(hostile),
    )
    db = sqlite3.connect(settings.journal_path)
    try:
        stored = [
            str(v) for table in ("rows", "payouts", "api_calls")
            for row in db.execute(f"SELECT * FROM {table}") for v in row if v is not None
        ]  # fmt: skip
    finally:
        db.close()
    assert any(v.startswith("refused ak_live_…") for v in stored)  # the message was stored
    assert all(len(v) <= MAX_MESSAGE_CHARS for v in stored)
    assert not any(LIVE_KEY in v or secret in v for v in stored)
    for path in result.paths:
        data = path.read_bytes()
        assert LIVE_KEY.encode() not in data and secret.encode() not in data
        assert b"A" * (MAX_MESSAGE_CHARS + 1) not in data
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(result.paths.csv.parent.stat().st_mode) == 0o700
    assert b"refused ak_live_" in result.paths.csv.read_bytes()
