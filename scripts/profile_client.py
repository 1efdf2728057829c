"""A profile, not a result: the API client's own CPU per request, and beside another checkout's.

The whole-process benchmark (``scripts/bench_run.py``) moves by ±10% from one measurement to
the next on this 2-core VM, which hides a change of a few percent in one part. This times only
the client's request path — ``AntonClient.request("GET", "/v1/balances")``, 128 in flight,
over a real socket to ``batchpay sandbox serve`` — in child processes, alternating with the
checkout given by ``--baseline`` (e.g. a ``git worktree`` of the commit before a change) on
the same sandbox, so both meet the same VM speed.

    python scripts/profile_client.py
    git worktree add /tmp/base HEAD~1 && python scripts/profile_client.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

ROOT = Path(__file__).resolve().parents[1]


async def _child(url: str, n: int, inflight: int) -> None:
    from batchpay.client import AntonClient
    from batchpay.client.credentials import ApiKey
    from batchpay.sandbox import DEFAULT_API_KEY

    async with AntonClient(url, ApiKey(DEFAULT_API_KEY), max_concurrency=inflight) as client:
        await client.request("GET", "/v1/balances")  # the connection and imports warmed
        gate = asyncio.Semaphore(inflight)

        async def one() -> None:
            async with gate:
                await client.request("GET", "/v1/balances")

        before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{cpu * 1e6 / n:.0f} {n / wall:.0f}")


def main() -> int:
    """Measure and print each round, then the medians and their ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--inflight", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline", metavar="CHECKOUT", help="another checkout to measure beside")
    p.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        asyncio.run(_child(args.child, args.requests, args.inflight))
        return 0
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from server import sandbox_server

    trees = {"this checkout": str(ROOT)}
    if args.baseline:
        trees["baseline"] = str(Path(args.baseline).resolve())
    found: dict[str, list[float]] = {name: [] for name in trees}
    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox_server(Path(tmp), "--rate-limit", "off", "--latency-ms", "20") as server,
    ):
        for _ in range(args.rounds):
            for name, tree in trees.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--child", server.url,
                     "--requests", str(args.requests), "--inflight", str(args.inflight)],
                    env={**os.environ, "BENCH_TREE": tree}, capture_output=True, text=True,
                    check=True,
                ).stdout.split()  # fmt: skip
                found[name].append(float(out[0]))
                print(f"{name}: {out[0]} µs of client CPU per request, {out[1]} requests/s")
    medians = {name: sorted(v)[len(v) // 2] for name, v in found.items()}
    for name, value in medians.items():
        print(f"median, {name}: {value:.0f} µs per request")
    if args.baseline:
        print(
            f"ratio, this checkout / baseline: {medians['this checkout'] / medians['baseline']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
