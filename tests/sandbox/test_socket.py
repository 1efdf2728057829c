"""The sandbox over a real loopback socket: uvicorn in a thread, and the serve command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from batchpay.sandbox import DEFAULT_API_KEY, FaultSettings, Sandbox, SandboxConfig, verify_webhook
from batchpay.sandbox.server import install_log_filter

from .helpers import individual, payout, uk_bank

pytestmark = pytest.mark.socket

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    install_log_filter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _payee(client: httpx.Client) -> tuple[str, str]:
    ben = client.post("/v1/beneficiaries", json=individual(), headers={"Idempotency-Key": "b"})
    ben_id = ben.json()["id"]
    ins = client.post(
        f"/v1/beneficiaries/{ben_id}/instruments", json=uk_bank(), headers={"Idempotency-Key": "i"}
    )
    return ben_id, ins.json()["id"]


def test_end_to_end_over_a_socket() -> None:
    """Create, advance the clock through the admin route, read completed, check the ledger."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    with serving(sb.app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        ben, ins = _payee(client)
        created = client.post(
            "/v1/payouts", json=payout(ben, ins), headers={"Idempotency-Key": "p"}
        )
        assert created.status_code == 201
        assert created.headers["x-ratelimit-limit"] == "1000"
        client.post("/_sandbox/clock/advance", json={"seconds": 10})
        fetched = client.get(f"/v1/payouts/{created.json()['id']}")
        assert fetched.json()["status"] == "completed"
        ledger = client.get("/_sandbox/ledger").json()["data"]
        assert [p["id"] for p in ledger] == [created.json()["id"]]
    sb.close()


def test_lost_response_really_drops_the_connection() -> None:
    """Over a socket the payout commits, the connection drops mid-answer, the retry replays."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    with serving(sb.app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        ben, ins = _payee(client)
        body = payout(ben, ins)
        headers = {"Idempotency-Key": "lost-1", "X-Sandbox-Fault": "lost_response"}
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/v1/payouts", json=body, headers=headers)
        assert len(client.get("/_sandbox/ledger").json()["data"]) == 1
        retry = client.post("/v1/payouts", json=body, headers={"Idempotency-Key": "lost-1"})
        assert retry.status_code == 201
        assert retry.headers["x-idempotent-replayed"] == "true"
        assert len(client.get("/_sandbox/ledger").json()["data"]) == 1
    sb.close()


def test_timeout_fault_commits_then_outlasts_the_client() -> None:
    """A timeout fault commits, then answers after timeout_seconds: the client times out."""
    config = SandboxConfig(manual_clock=True, faults=FaultSettings(timeout_seconds=0.6))
    sb = Sandbox(config)
    with serving(sb.app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        ben, ins = _payee(client)
        body = payout(ben, ins)
        with pytest.raises(httpx.ReadTimeout):
            client.post(
                "/v1/payouts",
                json=body,
                headers={"Idempotency-Key": "slow-1", "X-Sandbox-Fault": "timeout"},
                timeout=0.2,
            )
        retry = client.post("/v1/payouts", json=body, headers={"Idempotency-Key": "slow-1"})
        assert retry.headers["x-idempotent-replayed"] == "true"
        time.sleep(0.5)  # let the withheld answer finish before the server stops
    sb.close()


def test_background_ticker_moves_payouts_and_delivers_signed_webhooks() -> None:
    """In serve mode the ticker completes payouts on the wall clock and POSTs signed events."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response("ok")

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    config = SandboxConfig(step_seconds=0.02, tick_interval_seconds=0.02)
    sb = Sandbox(config)
    with (
        serving(receiver) as hook_url,
        serving(sb.app) as url,
        httpx.Client(base_url=url, headers=AUTH) as client,
    ):
        sub = client.post(
            "/v1/webhooks",
            json={"url": f"{hook_url}/hook", "events": ["payout.completed"]},
            headers={"Idempotency-Key": "w"},
        ).json()
        ben, ins = _payee(client)
        pay = client.post(
            "/v1/payouts", json=payout(ben, ins), headers={"Idempotency-Key": "p"}
        ).json()
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
    sb.close()
    assert received, "no webhook arrived"
    headers, body = received[0]
    event: dict[str, Any] = json.loads(body)
    assert event["type"] == "payout.completed" and event["data"]["id"] == pay["id"]
    assert verify_webhook(
        sub["secret"], headers["x-webhook-signature"], headers["x-webhook-timestamp"], body
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    "entry",
    [
        ["-c", "from batchpay.cli import main; main()", "sandbox"],
        ["-m", "batchpay.sandbox"],
    ],
    ids=["batchpay-cli", "python-m"],
)
def test_serve_command_comes_up_and_answers(tmp_path: Path, entry: list[str]) -> None:
    """`batchpay sandbox serve` answers its health check and the API (how fast is not
    asserted: busy CI machines vary)."""
    port = _free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            *entry,
            "serve",
            "--port",
            str(port),
            "--state",
            str(tmp_path / "state.db"),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        up_after = None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() - started < 10:
                try:
                    if client.get("/_sandbox/health").status_code == 200:
                        up_after = time.monotonic() - started
                        break
                except httpx.TransportError:
                    time.sleep(0.02)
            assert up_after is not None, "server never came up within 10 s"
            balances = client.get("/v1/balances", headers=AUTH)
            assert balances.status_code == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert b"batchpay sandbox" in err


def _assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    assert response.json()["error"]["code"] == code


def test_oversized_bodies_are_413_over_a_socket() -> None:
    """Declared or streamed, a body over 1 MB gets the 413 envelope; the server stays up."""
    sb = Sandbox(SandboxConfig(manual_clock=True))

    def stream() -> Iterator[bytes]:
        for _ in range(128):  # 8 MB, sent chunked: no Content-Length to refuse it by
            yield b" " * 65536

    with serving(sb.app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        declared = client.post(
            "/v1/payouts", content=b" " * (2 * 1024 * 1024), headers={"Idempotency-Key": "a"}
        )
        _assert_envelope(declared, 413, "file_too_large")
        streamed = client.post("/v1/payouts", content=stream(), headers={"Idempotency-Key": "b"})
        _assert_envelope(streamed, 413, "file_too_large")
        assert streamed.json()["error"]["message"] == "request body exceeds the 1 MB limit"
        assert client.get("/v1/balances").status_code == 200
    sb.close()


def test_deeply_nested_json_is_400_over_a_socket() -> None:
    """1,000-deep JSON with an Idempotency-Key is the 400 envelope, not a plain-text 500."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    with serving(sb.app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        response = client.post(
            "/v1/payouts",
            content=b"[" * 1000 + b"]" * 1000,
            headers={"Idempotency-Key": "deep", "Content-Type": "application/json"},
        )
        _assert_envelope(response, 400, "invalid_request_body")
    sb.close()
