"""A run with OAuth + DPoP whose token expires in the middle: renewed, nothing sent twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.errors import ExitCode
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class ClockJump(httpx.AsyncBaseTransport):
    """The sandbox in process; after the ``after``-th payout is created, 8 hours pass."""

    def __init__(self, sb: Sandbox, after: int) -> None:
        self.sb, self.after = sb, after
        self.inner = sb.transport()
        self.created = 0
        self.statuses: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses.append((request.method, request.url.path, response.status_code))
        if request.url.path == "/v1/payouts" and request.method == "POST":
            self.created += response.status_code == 201
            if self.created == self.after:
                await self.sb.advance(8 * 3600 + 60)  # every token is now expired
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("auth_mode", ["oauth"])
async def test_a_token_that_expires_mid_run_is_renewed_and_each_row_paid_once(
    sandbox: Sandbox, settings: pipeline.Settings, tmp_path: Path, auth_mode: str
) -> None:
    """Eight hours pass after the third payout: the next requests are answered 401
    invalid_token, a new token is minted, the same requests go again; each row paid once."""
    rows = [payee(i) for i in range(8)]
    jump = ClockJump(sandbox, after=3)
    kwargs = run_kwargs(sandbox, settings, tmp_path, concurrency=1)
    result = await pipeline.run_async(write_csv(tmp_path / "p.csv", rows),
                                      **{**kwargs, "transport": jump})  # fmt: skip
    assert result.exit_code == ExitCode.OK
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )
    assert [s for m, p, s in jump.statuses if p == "/oauth/token"] == [200, 200]
    refused = [i for i, (_, p, s) in enumerate(jump.statuses) if s == 401]
    assert refused  # the expired token was refused ...
    for i in refused:  # ... and that very request was sent again (after the new token)
        again = next(x for x in jump.statuses[i + 1 :] if x[1] != "/oauth/token")
        assert again[:2] == jump.statuses[i][:2] and again[2] != 401
    assert {r.outcome for r in result.report.rows} == {"pending"}
