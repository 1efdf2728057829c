"""Benchmark: the sandbox's own CPU per request as idempotency keys pile up.

Sends N ``POST /v1/payouts``, each with a fresh Idempotency-Key, through the in-process
transport (manual clock, no rate limit), and times only the sandbox's ASGI app around each
request with ``time.process_time()``. Prints, as JSON, the mean CPU per request over the
first and the last 1,000 requests and over the whole run; with ``--baseline`` (a file this
script wrote earlier, e.g. on an older commit) also the ratio baseline / now.

    python scripts/bench_sandbox.py --out /tmp/after.json
    python scripts/bench_sandbox.py --requests 20000 --baseline /tmp/before.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)
from starlette.types import ASGIApp, Receive, Scope, Send

from batchpay.sandbox import Sandbox, SandboxConfig

BENEFICIARY = {
    "type": "individual",
    "country": "GB",
    "individual": {
        "first_name": "Jane",
        "last_name": "Smith",
        "email": "jane@example.com",
        "phone": "+442079460000",
        "date_of_birth": "1988-05-12",
        "nationality": "GB",
        "address": {
            "street_line_1": "10 Example Street",
            "city": "London",
            "postal_code": "SW1A 1AA",
            "country": "GB",
        },
    },
}
INSTRUMENT = {
    "method": "uk_bank",
    "credentials": {"sort_code": "12-34-56", "account_number": "12345678"},
}


class _Timed:
    """Wraps the sandbox app and records the process CPU each request spends inside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cpu: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu.append(time.process_time() - started)


async def measure(requests: int) -> dict[str, Any]:
    """Send ``requests`` keyed payout POSTs and return the CPU figures."""
    sandbox = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    sandbox.set_balance("GBP", "1000000000.00")
    timed = _Timed(sandbox.app)
    sandbox.app = timed
    try:
        async with sandbox.client() as client:
            ben = await client.post(
                "/v1/beneficiaries", json=BENEFICIARY, headers={"Idempotency-Key": "b"}
            )
            ins = await client.post(
                f"/v1/beneficiaries/{ben.json()['id']}/instruments",
                json=INSTRUMENT,
                headers={"Idempotency-Key": "i"},
            )
            timed.cpu.clear()
            for n in range(requests):
                body = {
                    "beneficiary_id": ben.json()["id"],
                    "instrument_id": ins.json()["id"],
                    "source_amount": "1.00",
                    "source_currency": "GBP",
                    "dest_amount": "1.00",
                    "dest_currency": "GBP",
                    "method": "faster_payment",
                    "purpose": "contractor_payment",
                    "reference": f"BENCH-{n}",
                }
                r = await client.post(
                    "/v1/payouts", json=body, headers={"Idempotency-Key": f"k{n}"}
                )
                if r.status_code != 201:
                    raise SystemExit(f"request {n}: {r.status_code} {r.text}")
    finally:
        await sandbox.aclose()
    cpu = timed.cpu
    window = min(1000, len(cpu))

    def us(xs: list[float]) -> float:
        return round(sum(xs) / len(xs) * 1e6, 1)

    return {
        "requests": len(cpu),
        "cpu_us_per_request_first_1000": us(cpu[:window]),
        "cpu_us_per_request_last_1000": us(cpu[-window:]),
        "cpu_us_per_request_mean": us(cpu),
        "cpu_seconds_total": round(sum(cpu), 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--out", type=Path, help="also write the figures to this file")
    p.add_argument("--baseline", type=Path, help="figures of an earlier run to compare with")
    args = p.parse_args(argv)
    figures = asyncio.run(measure(args.requests))
    if args.baseline is not None:
        before = json.loads(args.baseline.read_text())
        for name in ("mean", "last_1000"):
            key = f"cpu_us_per_request_{name}"
            figures[f"ratio_baseline_over_now_{name}"] = round(before[key] / figures[key], 2)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
