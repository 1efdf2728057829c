# ruff: noqa: SIM105
"""Row keys that could differ for the same payout (found by an attack; now fixed).

* an API URL whose path has dot segments (``/.``, ``/v1/..``) reaches the very same
  endpoints (httpx removes dot segments) but is another "environment", so every row key,
  idempotency key and the already-run check change;
* references that differ only by an invisible character the ingest check does not list.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.errors import BatchpayError
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


def _paid_more_than_once(sb: Sandbox) -> dict[str, int]:
    c = Counter(p["reference"] for p in sb.ledger())
    return {k: v for k, v in c.items() if v > 1}


@pytest.mark.parametrize("suffix", ["/.", "/v1/..", "/./"])
async def test_a_url_with_dot_segments_pays_the_same_file_again(
    sandbox: Sandbox, tmp_path: Path, suffix: str
) -> None:
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    home = sandbox_settings(tmp_path / "a")
    first = await pipeline.run_async(f, **run_kwargs(sandbox, home, tmp_path))
    assert len(sandbox.ledger()) == 3
    same_home_other_spelling = dataclasses.replace(home, api_url=home.api_url + suffix)
    try:
        await pipeline.run_async(f, **run_kwargs(sandbox, same_home_other_spelling, tmp_path))
    except BatchpayError:
        pass  # refusing the file (exit 5) would be right
    assert first.exit_code == 0
    assert _paid_more_than_once(sandbox) == {}


@pytest.mark.parametrize(
    "ch", ["\u034f", "\u061c", "\u180e", "\u3164", "\ufe0f", "\u2800", "\U000e0061", "\uffa0"]
)
async def test_a_reference_with_an_unlisted_invisible_character_is_paid_again(
    sandbox: Sandbox, tmp_path: Path, ch: str
) -> None:
    home = sandbox_settings(tmp_path / "a")
    await pipeline.run_async(
        write_csv(tmp_path / "1.csv", [payee(0)]), **run_kwargs(sandbox, home, tmp_path)
    )
    looks_the_same = payee(0, reference=payee(0)["reference"] + ch)
    try:
        await pipeline.run_async(
            write_csv(tmp_path / "2.csv", [looks_the_same, payee(3)]),
            **run_kwargs(sandbox, home, tmp_path),
        )
    except BatchpayError:
        pass  # refusing the cell (invisible_character) would be right
    refs = [p["reference"] for p in sandbox.ledger()]
    assert [r for r in refs if r.startswith(payee(0)["reference"])] == [payee(0)["reference"]]
